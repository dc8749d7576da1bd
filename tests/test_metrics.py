"""Evaluation metrics: FID, KID, memorization distance, MiFID, feature extraction and the CLI.

Every score is checked against an independent computation: scipy's sqrtm for FID, closed forms,
plain python loops for the memorization distance and KID.
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from monet_keras.errors import MonetKerasError
from monet_keras.evaluate import features, memorization, metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sqrtm_fid(x, y):
    """FID as Kaggle's code computes it: np.cov, scipy.linalg.sqrtm of the product, real trace."""
    cov_x, cov_y = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    shift = x.mean(axis=0) - y.mean(axis=0)
    root = scipy.linalg.sqrtm(cov_x @ cov_y)
    return shift @ shift + np.trace(cov_x) + np.trace(cov_y) - 2.0 * np.trace(root).real


def correlated(rng, n, dim, shift=0.0):
    mixing = np.random.default_rng(123).standard_normal((dim, dim)) / np.sqrt(dim)
    return rng.standard_normal((n, dim)) @ mixing + shift


def direct_nearest(generated, real):
    """min over real of 1 - |cos| for each non-zero generated row, by plain loops (Kaggle drops zero rows)."""
    out = []
    for g in generated:
        if not np.any(g):
            continue
        best = math.inf
        for r in real:
            if not np.any(r):
                continue
            cos = float(np.dot(g, r)) / (math.sqrt(float(np.dot(g, g))) * math.sqrt(float(np.dot(r, r))))
            best = min(best, 1.0 - abs(cos))
        out.append(best)
    return out


def direct_mmd2(x, y):
    """Unbiased MMD^2, cubic polynomial kernel, by loops over pairs."""
    dim = x.shape[1]

    def k(a, b):
        return (float(np.dot(a, b)) / dim + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


# --- FID ----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_generated,n_real,dim", [
    (200, 300, 16),   # full rank: both sets larger than dim (square-root factor)
    (300, 30, 64),    # rank-deficient: 30 < 64, small Gram matrix from the data
    (1000, 60, 64),   # rank-deficient: 60 < 64, small Gram matrix through the covariance
    (20, 40, 64),     # both sets smaller than dim
])
def test_fid_matches_scipy_sqrtm(n_generated, n_real, dim):
    rng = np.random.default_rng(n_generated + n_real)
    generated = np.abs(correlated(rng, n_generated, dim, 0.3))
    real = np.abs(correlated(rng, n_real, dim))
    expected = sqrtm_fid(generated, real)
    assert metrics.fid(generated, real) == pytest.approx(expected, rel=1e-6)
    assert metrics.fid(real, generated) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("n,dim", [(400, 32), (50, 100)])
def test_fid_closed_forms(n, dim):
    rng = np.random.default_rng(7)
    x = correlated(rng, n, dim)
    scale = np.trace(np.cov(x, rowvar=False))
    assert abs(metrics.fid(x, x.copy())) < 1e-9 * scale
    shift = rng.standard_normal(dim)
    assert metrics.fid(x + shift, x) == pytest.approx(float(shift @ shift), rel=1e-8, abs=1e-9 * scale)


def test_trace_sqrt_product_matches_sqrtm_trace():
    rng = np.random.default_rng(3)
    x, y = correlated(rng, 25, 40), correlated(rng, 90, 40)
    expected = np.trace(scipy.linalg.sqrtm(np.cov(x, rowvar=False) @ np.cov(y, rowvar=False))).real
    assert metrics.trace_sqrt_product(x, y) == pytest.approx(expected, rel=1e-6)


# --- memorization distance and MiFID ------------------------------------------------------


def test_memorization_distance_matches_direct_loop_and_skips_zero_rows():
    rng = np.random.default_rng(1)
    real = rng.standard_normal((15, 6))
    generated = rng.standard_normal((12, 6))
    generated[4] = 0.0  # dropped, as Kaggle drops all-zero rows
    real[2] = 0.0
    expected = direct_nearest(generated, real)
    distances, indices = metrics.nearest_real(generated, real, chunk_size=5)
    assert np.isnan(distances[4]) and indices[4] == -1
    np.testing.assert_allclose(distances[~np.isnan(distances)], expected, rtol=1e-12, atol=1e-12)
    assert 2 not in indices
    assert metrics.memorization_distance(generated, real) == pytest.approx(np.mean(expected), rel=1e-12)
    # the index points at the real row that achieves the distance
    g, r = generated[0], real[indices[0]]
    assert 1 - abs(g @ r / np.linalg.norm(g) / np.linalg.norm(r)) == pytest.approx(distances[0], abs=1e-12)


def test_memorized_images_raise_mifid_far_above_fid():
    rng = np.random.default_rng(2)
    real = rng.standard_normal((40, 32))
    generated = real[rng.permutation(40)[:30]] + 1e-3 * rng.standard_normal((30, 32))
    distance = float(np.mean(direct_nearest(generated, real)))
    assert distance < 1e-3
    # 1 - |cos| of near-parallel vectors is known to about 1e-16 absolute, hence rel=1e-8
    scores = metrics.compute_scores(generated, real, kid_subsets=2)
    assert scores["memorization_distance"] == pytest.approx(distance, rel=1e-8)
    assert scores["memorization_distance_thresholded"] == pytest.approx(distance, rel=1e-8)
    assert scores["mifid"] == pytest.approx(scores["fid"] / (distance + 1e-14), rel=1e-8)
    assert scores["mifid"] > 100 * scores["fid"]
    assert scores["share_under_threshold"] == 1.0


def test_unmemorized_images_have_mifid_equal_to_fid():
    rng = np.random.default_rng(4)
    real, generated = rng.standard_normal((40, 32)), rng.standard_normal((30, 32)) + 0.2
    nearest = direct_nearest(generated, real)
    assert np.mean(nearest) > 0.1
    scores = metrics.compute_scores(generated, real, kid_subsets=2)
    assert scores["memorization_distance_thresholded"] == 1.0
    assert scores["mifid"] == pytest.approx(scores["fid"], rel=1e-13)
    assert scores["fid"] == pytest.approx(sqrtm_fid(generated, real), rel=1e-6)
    assert scores["share_under_threshold"] == pytest.approx(np.mean(np.array(nearest) < 0.1))


def test_threshold_is_strict_and_mifid_uses_kaggle_epsilon():
    assert metrics.thresholded_distance(0.0999) == 0.0999
    assert metrics.thresholded_distance(0.1) == 1.0
    assert metrics.mifid(50.0, 0.05) == 50.0 / (0.05 + 1e-14)
    assert metrics.mifid(50.0, 0.0) == 50.0 / 1e-14


# --- KID ----------------------------------------------------------------------------------


def test_kid_on_whole_sets_matches_direct_mmd():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((12, 5)), rng.standard_normal((12, 5)) + 0.5
    mean, std = metrics.kid(x, y, subset_size=1000, num_subsets=3)
    assert mean == pytest.approx(direct_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)  # every draw holds both whole sets


def test_kid_subsets_follow_the_documented_sampling():
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((30, 4)), rng.standard_normal((20, 4)) * 1.3
    draws = np.random.default_rng(11)
    values = []
    for _ in range(5):
        gx = x[draws.choice(30, 8, replace=False)]
        ry = y[draws.choice(20, 8, replace=False)]
        values.append(direct_mmd2(gx, ry))
    mean, std = metrics.kid(x, y, subset_size=8, num_subsets=5, seed=11)
    assert mean == pytest.approx(np.mean(values), rel=1e-10)
    assert std == pytest.approx(np.std(values), rel=1e-8)


def test_kid_is_near_zero_for_one_distribution_and_not_for_two():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
    mean, std = metrics.kid(x, y, subset_size=100, num_subsets=50)
    assert abs(mean) < 3 * std
    mean_shifted, std_shifted = metrics.kid(x + 0.5, y, subset_size=100, num_subsets=50)
    assert mean_shifted > 3 * std_shifted


# --- bad input ----------------------------------------------------------------------------


def test_bad_feature_matrices_raise_clear_errors():
    with pytest.raises(MonetKerasError, match="feature dimensions differ: generated has 8, real has 9"):
        metrics.fid(np.ones((5, 8)), np.ones((5, 9)))
    with pytest.raises(MonetKerasError, match="feature dimensions differ"):
        metrics.nearest_real(np.ones((5, 8)), np.ones((5, 9)))
    with pytest.raises(MonetKerasError, match="real features: need at least 2 rows"):
        metrics.fid(np.ones((5, 8)), np.ones((1, 8)))
    with pytest.raises(MonetKerasError, match="2-D"):
        metrics.kid(np.ones(8), np.ones((5, 8)))
    with pytest.raises(MonetKerasError, match="NaN"):
        metrics.fid(np.full((3, 2), np.nan), np.ones((3, 2)))
    with pytest.raises(MonetKerasError, match="every generated feature vector is zero"):
        metrics.memorization_distance(np.zeros((3, 2)), np.ones((3, 2)))


def write_jpegs(folder, count, size=32, seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"img{i:02d}.jpg"), quality=95)


def test_bad_image_sources_raise_errors_naming_the_culprit(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MonetKerasError, match=r"no .jpg or .tfrec files in .*empty: it is empty"):
        features.open_images(empty)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "readme.txt").write_text("not an image")
    with pytest.raises(MonetKerasError, match=r"no .jpg or .tfrec files in .*notes: .* e.g. readme.txt"):
        features.open_images(notes)
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "painting.jpg").write_text("not a jpeg")
    with pytest.raises(MonetKerasError, match=r"cannot read image .*painting.jpg: .*--skip-corrupt"):
        list(features.open_images(fake))
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("notes.txt", "hello")
    with pytest.raises(MonetKerasError, match=r"no images .*images\.zip: .*notes\.txt"):
        features.open_images(archive)
    with pytest.raises(MonetKerasError, match="no such file or folder"):
        features.open_images(tmp_path / "missing")
    with pytest.raises(MonetKerasError, match=r"float images must lie in \[-1, 1\]"):
        list(features.open_images(np.full((2, 8, 8, 3), 255.0, dtype=np.float32)))
    with pytest.raises(MonetKerasError, match="expected RGB images"):
        features.open_images(np.zeros((2, 8, 8), dtype=np.uint8))


# --- feature extraction -------------------------------------------------------------------


def reference_batch(folder, size):
    """The documented preprocessing, done independently: PIL decode, x/127.5 - 1, bilinear resize."""
    import tensorflow as tf

    names = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))
    images = [np.asarray(Image.open(os.path.join(folder, n)).convert("RGB"), dtype=np.float32) / 127.5 - 1
              for n in names]
    return tf.image.resize(np.stack(images), (size, size), method="bilinear").numpy()


def test_inception_extractor_with_random_weights(tmp_path):
    folder = tmp_path / "imgs"
    write_jpegs(folder, 3, size=32)
    extractor = features.inception_extractor(weights=None)
    assert not extractor.comparable_to_kaggle and "weights=None" in extractor.weights
    got = features.extract_features(folder, extractor, batch_size=2, verbose=0)
    assert got.shape == (3, features.INCEPTION_DIM) and got.dtype == np.float32
    expected = np.asarray(extractor.fn(reference_batch(folder, 299)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert (got >= 0).all()  # average of ReLU outputs, as Inception's pool features

    # the same weights through a local file (the --weights / MONET_KERAS_INCEPTION_WEIGHTS path)
    path = tmp_path / "inception.weights.h5"
    extractor.model.save_weights(path)
    from_file = features.inception_extractor(weights=path)
    assert from_file.weights.startswith("sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())
    assert not from_file.comparable_to_kaggle  # not Keras's ImageNet file
    again = features.extract_features(folder, from_file, verbose=0)
    np.testing.assert_allclose(again, got, rtol=1e-4, atol=1e-5)


def test_standin_extractor_is_deterministic_and_reads_every_source_alike(tmp_path):
    import tensorflow as tf

    folder = tmp_path / "imgs"
    write_jpegs(folder, 4, size=32, seed=3)
    extractor = features.standin_extractor(image_size=64)
    assert features.NOT_COMPARABLE in extractor.label and not extractor.comparable_to_kaggle
    from_folder = features.extract_features(folder, extractor, batch_size=3, verbose=0)
    assert from_folder.shape == (4, 2048)
    np.testing.assert_allclose(from_folder, extractor.fn(reference_batch(folder, 64)), rtol=1e-4, atol=1e-6)

    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in sorted(os.listdir(folder)):
            z.write(folder / name, arcname=name)
        z.writestr("__MACOSX/._img00.jpg", b"junk")
    again = features.standin_extractor(image_size=64)
    # another batching (the default) and another reader: equal up to float round-off
    np.testing.assert_allclose(features.extract_features(archive, again, verbose=0), from_folder,
                               rtol=1e-5, atol=1e-6)

    pixels = np.stack([np.asarray(Image.open(folder / n)) for n in sorted(os.listdir(folder))])
    from_array = features.extract_features(pixels, extractor, batch_size=4, verbose=0)
    from_dataset = features.extract_features(tf.data.Dataset.from_tensor_slices(pixels).batch(3), extractor,
                                             verbose=0)
    np.testing.assert_allclose(from_array, from_folder, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_dataset, from_folder, rtol=1e-5, atol=1e-6)

    other = features.standin_extractor(seed=1, image_size=64)
    other_seed = features.extract_features(folder, other, verbose=0)
    assert not np.allclose(other_seed, from_folder)


def test_kaggle_layout_tfrecords_give_the_same_images_as_the_jpegs(tmp_path):
    from tfrecords_tools.schema import encode_example

    jpgs = tmp_path / "jpg"
    write_jpegs(jpgs, 3, size=32, seed=4)
    (tmp_path / "kaggle" / "monet_tfrec").mkdir(parents=True)
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(tmp_path / "kaggle" / "monet_tfrec" / "monet00-3.tfrec")) as writer:
        for name in sorted(os.listdir(jpgs)):
            writer.write(encode_example(name[:-4], (jpgs / name).read_bytes(), "monet"))
    (tmp_path / "kaggle" / "monet_jpg").mkdir()  # JPEGs too, which the TFRecords win over
    (tmp_path / "kaggle" / "monet_jpg" / "other.jpg").write_bytes((jpgs / "img00.jpg").read_bytes())
    source = features.open_images(tmp_path / "kaggle")
    assert "TFRecords" in source.description
    extractor = features.standin_extractor(image_size=32)
    np.testing.assert_allclose(features.extract_features(source, extractor, verbose=0),
                               features.extract_features(jpgs, extractor, verbose=0), rtol=1e-5, atol=1e-6)


def test_custom_callable_extractor_and_shape_checks():
    images = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    got = features.extract_features(images, lambda batch: batch.mean(axis=(1, 2)), batch_size=2, verbose=0)
    assert got.shape == (5, 3)
    np.testing.assert_allclose(got, -1.0)
    with pytest.raises(MonetKerasError, match="returned shape"):
        features.extract_features(images, lambda batch: batch[:1].reshape(1, -1), verbose=0)


def test_missing_pretrained_weights_give_one_line(monkeypatch, tmp_path):
    import keras

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example: None -- [Errno -2]\nName or service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.delenv(features.WEIGHTS_ENV, raising=False)
    with pytest.raises(features.WeightsUnavailable) as error:
        features.inception_extractor("auto")
    message = str(error.value)
    assert "\n" not in message and "--stand-in" in message and features.WEIGHTS_ENV in message
    monkeypatch.setenv(features.WEIGHTS_ENV, str(tmp_path / "nowhere.h5"))
    expected = rf"not found: .*nowhere.h5 \(from \${features.WEIGHTS_ENV}\)"
    with pytest.raises(features.WeightsUnavailable, match=expected):
        features.inception_extractor("auto")


# --- report and CLI -----------------------------------------------------------------------


def test_memorization_report_draws_histogram_and_pairs(tmp_path):
    rng = np.random.default_rng(9)
    real = rng.standard_normal((6, 4))
    generated = np.vstack([real[:2] + 1e-3, rng.standard_normal((4, 4))])
    distances, indices = metrics.nearest_real(generated, real)
    images = features.open_images(rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    paintings = features.open_images(rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8))
    pairs = memorization.closest_pairs(images, paintings, distances, indices, count=3)
    order = np.argsort(distances)[:3]
    assert [d for _, _, d in pairs] == pytest.approx(distances[order].tolist())
    np.testing.assert_array_equal(pairs[0][1], paintings.load(int(indices[order[0]])))
    path = tmp_path / "report.png"
    figure = memorization.memorization_report(distances, pairs=pairs, subtitle="test", path=path)
    assert len(figure.axes) == 1 + 2 * 3
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run_cli(*args):
    """``python -m monet_keras ARGS`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop(features.WEIGHTS_ENV, None)
    return subprocess.run([sys.executable, "-m", "monet_keras", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def test_evaluate_cli_with_stand_in_writes_labelled_json(tmp_path):
    write_jpegs(tmp_path / "gen", 4, size=32, seed=5)
    write_jpegs(tmp_path / "kaggle" / "monet_jpg", 5, size=32, seed=6)
    out, report = tmp_path / "results.json", tmp_path / "memorization.png"
    result = run_cli("evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "kaggle"),
                     "--stand-in", "--image-size", "64", "--out", str(out), "--report", str(report),
                     "--quiet")
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())
    assert scores["comparable_to_kaggle"] is False
    assert scores["extractor"] == features.STANDIN_NAME
    assert scores["n_generated"] == 4 and scores["n_real"] == 5
    assert features.NOT_COMPARABLE in scores["note"] and "estimate" in scores["note"]
    d_thr = scores["memorization_distance_thresholded"]
    assert scores["mifid"] == pytest.approx(scores["fid"] / (d_thr + 1e-14))
    assert features.NOT_COMPARABLE in result.stdout and "MiFID" in result.stdout
    assert report.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_cli_without_weights_stops_with_one_line(tmp_path):
    write_jpegs(tmp_path / "gen", 2)
    result = run_cli("evaluate", "--generated", str(tmp_path / "gen"), "--real", str(tmp_path / "gen"),
                     "--weights", str(tmp_path / "missing.h5"))
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: InceptionV3 weights file not found: {tmp_path / 'missing.h5'} (from weights)"]


def test_evaluate_cli_skips_corrupt_images_only_when_asked(corrupt_data_dir, tmp_path, capsys):
    from monet_keras.cli import main

    out = tmp_path / "scores.json"
    args = ["evaluate", "--generated", str(corrupt_data_dir / "photo_jpg"), "--real", str(corrupt_data_dir),
            "--stand-in", "--image-size", "32", "--kid-subsets", "2", "--out", str(out), "--quiet"]
    assert main(args) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{corrupt_data_dir}/photo_jpg/broken.jpg" in errors[0]
    assert "--skip-corrupt" in errors[0] and not out.exists()
    assert main(args + ["--skip-corrupt"]) == 0
    printed = capsys.readouterr().out
    # the broken photo, read as a painting too
    assert "skipping 1 unreadable or odd monet record(s)" in printed
    scores = json.loads(out.read_text())
    good_photos = len([n for n in os.listdir(corrupt_data_dir / "photo_jpg") if n != "broken.jpg"])
    good_paintings = len([n for n in os.listdir(corrupt_data_dir / "monet_jpg") if n != "broken.jpg"])
    assert (scores["n_generated"], scores["n_real"]) == (good_photos, good_paintings)
