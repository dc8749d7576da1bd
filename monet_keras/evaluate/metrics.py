"""FID, KID, memorization distance and MiFID as Kaggle computes them, plus ``evaluate``.

Every score is computed from two feature matrices (generated, real), one row per image, in
float64. Features come from :mod:`monet_keras.evaluate.features` (InceptionV3 pool features for figures
comparable to Kaggle's). The formulas, as in Kaggle's MiFID code:

- ``FID = ||mu_g - mu_r||^2 + tr S_g + tr S_r - 2 tr sqrt(S_g S_r)`` with unbiased covariances
  (``np.cov``'s default, ddof=1); the trace term by :func:`trace_sqrt_product`.
- memorization distance ``d = mean over generated g of min over real r of (1 - |cos(g, r)|)``;
  ``d_thr = d if d < 0.1 else 1``; ``MiFID = FID / (d_thr + 1e-14)``.
- KID: unbiased MMD^2 with the kernel ``k(x, y) = (x.y / dim + 1)^3``, mean and standard
  deviation over random subsets (clean-fid / torch-fidelity conventions).

Kaggle scores against Monet paintings that participants never see, so a local figure is an
estimate, and figures from the stand-in extractor are not comparable to Kaggle's at all.
"""

import json

import numpy as np

from monet_keras.errors import MonetKerasError
from monet_keras.evaluate import features as feats
from tfrecords_tools.atomic import write_text

DISTANCE_EPS = 0.1
FID_EPSILON = 1e-14
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100
ESTIMATE_NOTE = ("Kaggle scores against Monet paintings that participants never see, so a local figure "
                 "is only an estimate of the leaderboard score.")


def _features(x, what, min_rows):
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise MonetKerasError(f"{what} features must be a numeric (n, d) array") from None
    if x.ndim != 2:
        raise MonetKerasError(f"{what} features must be a 2-D (n, d) array, got shape {x.shape}")
    if len(x) < min_rows:
        raise MonetKerasError(f"{what} features: need at least {min_rows} rows, got {len(x)}")
    if not np.isfinite(x).all():
        raise MonetKerasError(f"{what} features contain NaN or infinite values")
    return x


def _pair(generated, real, min_rows=1):
    """Both matrices as float64, checked: 2-D, enough rows, finite, one feature dimension."""
    generated = _features(generated, "generated", min_rows)
    real = _features(real, "real", min_rows)
    if generated.shape[1] != real.shape[1]:
        raise MonetKerasError(f"feature dimensions differ: generated has {generated.shape[1]}, "
                              f"real has {real.shape[1]}")
    return generated, real


# --- FID ----------------------------------------------------------------------------------


def trace_sqrt_product(features_1, features_2) -> float:
    """``tr sqrt(S_1 S_2)`` for the unbiased covariances of two feature matrices, exactly.

    Method: let ``a`` be the set with fewer rows (``n_a``), ``b`` the other, ``A`` and ``B``
    their centred rows, ``S_a = A^T A / (n_a - 1)`` and ``S_b = B^T B / (n_b - 1)``. For any
    ``F`` with ``F^T F = S_a``, the nonzero eigenvalues of ``S_a S_b = F^T (F S_b)`` are those of
    ``K = F S_b F^T`` (``XY`` and ``YX`` share their nonzero eigenvalues), a symmetric positive
    semi-definite matrix, so ``tr sqrt(S_a S_b) = sum_i sqrt(max(lambda_i(K), 0))`` with
    ``numpy.linalg.eigvalsh``; the clip removes rounding noise only. This is the trace of the
    principal square root that ``scipy.linalg.sqrtm(S_1 @ S_2)`` computes, without its cost or
    its trouble with singular products.

    ``F = A / sqrt(n_a - 1)`` when ``n_a <= dim`` (``K`` is ``n_a x n_a``); else ``F = S_a^(1/2)``
    from ``eigh`` (``K`` is ``dim x dim``). ``K`` is formed as ``P P^T`` with
    ``P = F B^T / sqrt(n_b - 1)`` or as ``F S_b F^T``, whichever takes fewer multiplications.
    For 300 paintings against 7,038 images in 2048-d, ``K`` is 300 x 300 and the work is one
    300 x 2048 x 7038 product; no 2048 x 2048 matrix is formed.
    """
    a, b = _pair(features_1, features_2, min_rows=2)
    if len(a) > len(b):
        a, b = b, a
    n_a, n_b, dim = len(a), len(b), a.shape[1]
    centred_a = a - a.mean(axis=0)
    centred_b = b - b.mean(axis=0)
    if n_a <= dim:
        factor = centred_a / np.sqrt(n_a - 1)
    else:
        eigenvalues, eigenvectors = np.linalg.eigh(centred_a.T @ centred_a / (n_a - 1))
        factor = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))).T
    rank = len(factor)
    if rank * n_b * (dim + rank) <= dim * dim * (n_b + rank) + rank * rank * dim:
        product = factor @ centred_b.T / np.sqrt(n_b - 1)
        gram = product @ product.T
    else:
        cov_b = centred_b.T @ centred_b / (n_b - 1)
        gram = factor @ cov_b @ factor.T
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None)).sum())


def _trace_cov(x):
    centred = x - x.mean(axis=0)
    return float(np.einsum("ij,ij->", centred, centred) / (len(x) - 1))


def fid(generated, real) -> float:
    """Fréchet distance between Gaussians fitted to two feature matrices (at least 2 rows each).

    ``||mu_g - mu_r||^2 + tr S_g + tr S_r - 2 tr sqrt(S_g S_r)``, unbiased covariances, float64;
    the trace term by :func:`trace_sqrt_product`. Not clipped: identical sets give 0 up to
    rounding (about 1e-12 relative), which may be slightly negative.
    """
    generated, real = _pair(generated, real, min_rows=2)
    shift = generated.mean(axis=0) - real.mean(axis=0)
    return float(shift @ shift + _trace_cov(generated) + _trace_cov(real)
                 - 2.0 * trace_sqrt_product(generated, real))


# --- memorization and MiFID ---------------------------------------------------------------


def nearest_real(generated, real, chunk_size=4096):
    """For each generated row, ``min over real rows of 1 - |cos|`` and the index of that real row.

    Returns ``(distances, indices)``: float64 and int64 arrays of length ``n_generated``. Rows that
    are all zero have no direction; Kaggle's code drops them (it keeps rows whose feature sum is
    non-zero, the same rows for non-negative pool features). Here a zero generated row gets
    distance NaN and index -1, and a zero real row is never anyone's nearest. Computed
    ``chunk_size`` generated rows at a time, so memory stays at ``chunk_size x n_real``.
    """
    generated, real = _pair(generated, real)
    real_norms = np.linalg.norm(real, axis=1)
    kept_real = np.flatnonzero(real_norms > 0)
    if not len(kept_real):
        raise MonetKerasError("every real feature vector is zero: no direction to compare with")
    unit_real = real[kept_real] / real_norms[kept_real, None]
    distances = np.full(len(generated), np.nan)
    indices = np.full(len(generated), -1, dtype=np.int64)
    for start in range(0, len(generated), chunk_size):
        block = generated[start:start + chunk_size]
        norms = np.linalg.norm(block, axis=1)
        rows = np.flatnonzero(norms > 0)
        similarity = np.abs((block[rows] / norms[rows, None]) @ unit_real.T)
        best = similarity.argmax(axis=1)
        distances[start + rows] = 1.0 - similarity[np.arange(len(rows)), best]
        indices[start + rows] = kept_real[best]
    return distances, indices


def memorization_distance(generated, real) -> float:
    """Kaggle's ``d``: the mean over non-zero generated rows of :func:`nearest_real`'s distance."""
    distances, _ = nearest_real(generated, real)
    if np.isnan(distances).all():
        raise MonetKerasError("every generated feature vector is zero: no direction to compare with")
    return float(np.nanmean(distances))


def thresholded_distance(distance, eps=DISTANCE_EPS) -> float:
    """Kaggle's ``d_thr``: ``distance`` if it is below ``eps``, else 1."""
    return float(distance) if distance < eps else 1.0


def mifid(fid_value, distance, eps=DISTANCE_EPS, fid_epsilon=FID_EPSILON) -> float:
    """Kaggle's ``MiFID = FID / (d_thr + fid_epsilon)`` with ``d_thr = thresholded_distance(distance, eps)``.

    Equal to the FID (up to 1e-14 relative) unless the generated images sit closer than ``eps``
    to the real ones on average, where it grows as ``FID / d``.
    """
    return float(fid_value) / (thresholded_distance(distance, eps) + fid_epsilon)


# --- KID ----------------------------------------------------------------------------------


def _mmd2_unbiased(x, y):
    """Unbiased MMD^2 with ``k(u, v) = (u.v / dim + 1)^3``: the diagonals of k(x, x), k(y, y) are left out."""
    dim = x.shape[1]
    m, n = len(x), len(y)
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    return ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
            - 2.0 * k_xy.sum() / (m * n))


def kid(generated, real, subset_size=KID_SUBSET_SIZE, num_subsets=KID_SUBSETS, seed=0):
    """Kernel Inception Distance: ``(mean, std)`` of the unbiased MMD^2 over random subsets.

    Kernel ``k(x, y) = (x.y / dim + 1)^3``. Each of ``num_subsets`` draws takes
    ``m = min(subset_size, n_generated, n_real)`` generated rows and then ``m`` real rows, each
    without replacement (``numpy.random.default_rng(seed).choice``), as clean-fid and
    torch-fidelity do; ``std`` is the population standard deviation of the draws (ddof=0, as
    torch-fidelity). When a set has no more than ``m`` rows every draw holds all of it.
    """
    generated, real = _pair(generated, real, min_rows=2)
    if not isinstance(num_subsets, int) or num_subsets < 1:
        raise MonetKerasError(f"bad num_subsets={num_subsets!r}: expected a positive integer")
    if not isinstance(subset_size, int) or subset_size < 2:
        raise MonetKerasError(f"bad subset_size={subset_size!r}: expected an integer >= 2")
    m = min(subset_size, len(generated), len(real))
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets)
    for i in range(num_subsets):
        x = generated[rng.choice(len(generated), m, replace=False)]
        y = real[rng.choice(len(real), m, replace=False)]
        values[i] = _mmd2_unbiased(x, y)
    return float(values.mean()), float(values.std())


# --- all scores and the evaluation --------------------------------------------------------


def compute_scores(generated, real, distance_eps=DISTANCE_EPS, kid_subset_size=KID_SUBSET_SIZE,
                   kid_subsets=KID_SUBSETS, seed=0) -> dict:
    """Every score for two feature matrices, as a JSON-ready dict of plain floats and ints.

    Keys: ``fid``, ``mifid``, ``memorization_distance`` (Kaggle's d), ``memorization_distance_thresholded``
    (d_thr), ``distance_eps``, ``fid_epsilon``, ``share_under_threshold`` (fraction of non-zero
    generated rows whose nearest distance is below ``distance_eps``), ``kid_mean``, ``kid_std``,
    ``kid_subset_size`` (the size used), ``kid_subsets``, ``kid_seed``, ``n_generated``, ``n_real``.
    """
    scores, _, _ = scores_and_nearest(generated, real, distance_eps, kid_subset_size, kid_subsets, seed)
    return scores


def scores_and_nearest(generated, real, distance_eps=DISTANCE_EPS, kid_subset_size=KID_SUBSET_SIZE,
                       kid_subsets=KID_SUBSETS, seed=0):
    """``(scores, distances, indices)``: :func:`compute_scores`'s dict and :func:`nearest_real`'s output.

    The per-image nearest distances and indices are the ones the memorization scores were
    computed from, so a caller that also needs them (the report figure) pays for one search.
    """
    generated, real = _pair(generated, real, min_rows=2)
    fid_value = fid(generated, real)
    distances, indices = nearest_real(generated, real)
    finite = distances[~np.isnan(distances)]
    if not len(finite):
        raise MonetKerasError("every generated feature vector is zero: no direction to compare with")
    distance = float(finite.mean())
    kid_mean, kid_std = kid(generated, real, kid_subset_size, kid_subsets, seed)
    scores = {
        "fid": fid_value,
        "mifid": mifid(fid_value, distance, distance_eps),
        "memorization_distance": distance,
        "memorization_distance_thresholded": thresholded_distance(distance, distance_eps),
        "distance_eps": distance_eps,
        "fid_epsilon": FID_EPSILON,
        "share_under_threshold": float(np.mean(finite < distance_eps)),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kid_subset_size": min(kid_subset_size, len(generated), len(real)),
        "kid_subsets": kid_subsets,
        "kid_seed": seed,
        "n_generated": len(generated),
        "n_real": len(real),
    }
    return scores, distances, indices


def _note(extractor):
    if extractor.kaggle_extractor:
        return ("Computed with Kaggle's extractor (the 2015 Inception graph, pool_3, fed as Kaggle "
                "feeds it); values differ from the leaderboard's through the paintings scored against. "
                + ESTIMATE_NOTE)
    if extractor.comparable_to_kaggle:
        return ("Features from Keras's ImageNet InceptionV3; Kaggle's evaluator runs its own Inception "
                "network, so values can differ from Kaggle's even on the same images. " + ESTIMATE_NOTE)
    return (f"{feats.NOT_COMPARABLE}: features from {extractor.name} ({extractor.weights}), not from "
            f"ImageNet InceptionV3 at {feats.INCEPTION_SIZE} px. " + ESTIMATE_NOTE)


def evaluate(generated, real, extractor, batch_size=32, kid_subset_size=KID_SUBSET_SIZE,
             kid_subsets=KID_SUBSETS, seed=0, json_path=None, report_path=None, verbose=1,
             skip_corrupt=False) -> dict:
    """Score generated images against real Monet paintings; optionally write JSON and a report PNG.

    ``generated``: ``images.zip``, a folder, an array or a dataset (see ``features.open_images``).
    ``real``: a folder of Monet images, a Kaggle-layout root (its Monet paintings) or an array.
    ``skip_corrupt``: leave out the unreadable or odd images of folders and TFRecords (checked
    first) instead of stopping at the first one.
    ``extractor``: a ``features.FeatureExtractor`` (``inception_extractor()``,
    ``standin_extractor()``) or a callable. Returns :func:`compute_scores`'s dict plus
    ``generated``, ``real``, the extractor's identity (``extractor``, ``weights``, ``image_size``,
    ``resize``, ``comparable_to_kaggle``) and a ``note`` saying what the figure is worth.
    """
    from monet_keras.evaluate import memorization

    extractor = feats.as_extractor(extractor)
    generated_images = feats.open_images(generated, skip_corrupt)
    real_images = feats.open_images(real, skip_corrupt)
    if verbose:
        print(f"extractor: {extractor.label}")
        print(f"generated: {generated_images.description}")
    generated_features = feats.extract_features(generated_images, extractor, batch_size, verbose)
    if verbose:
        print(f"real: {real_images.description}")
    real_features = feats.extract_features(real_images, extractor, batch_size, verbose)
    scores, distances, indices = scores_and_nearest(
        generated_features, real_features, kid_subset_size=kid_subset_size, kid_subsets=kid_subsets,
        seed=seed)
    scores.update(generated=generated_images.description, real=real_images.description,
                  **extractor.describe(), note=_note(extractor))
    if report_path:
        pairs = memorization.closest_pairs(generated_images, real_images, distances, indices)
        memorization.memorization_report(
            distances, threshold=DISTANCE_EPS, pairs=pairs, subtitle=extractor.label, path=report_path)
    if json_path:
        write_text(json_path, json.dumps(scores, indent=2) + "\n")
    return scores


def format_scores(scores) -> str:
    """The scores of :func:`evaluate` as a small text table, labelled with what they are worth."""
    verdict = "estimate" if scores["comparable_to_kaggle"] else feats.NOT_COMPARABLE
    rows = [
        ("MiFID", f"{scores['mifid']:.3f}"),
        ("FID", f"{scores['fid']:.3f}"),
        ("memorization distance", f"{scores['memorization_distance']:.4f} (thresholded: "
                                  f"{scores['memorization_distance_thresholded']:g}, "
                                  f"eps {scores['distance_eps']:g})"),
        ("under threshold", f"{scores['share_under_threshold']:.1%} of generated images"),
        ("KID", f"{scores['kid_mean']:.5f} +- {scores['kid_std']:.5f} "
                f"({scores['kid_subsets']} subsets of {scores['kid_subset_size']})"),
        ("images", f"{scores['n_generated']} generated, {scores['n_real']} real"),
        ("extractor", f"{scores['extractor']} [{scores['weights']}] at {scores['image_size']} px"),
    ]
    lines = [f"MiFID against {scores['n_real']} paintings ({verdict})"]
    lines += [f"  {name:<22} {value}" for name, value in rows]
    lines.append(f"note: {scores['note']}")
    return "\n".join(lines)
