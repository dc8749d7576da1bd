"""The memorization report: how close each generated image sits to its nearest Monet painting.

One figure: the histogram of every generated image's nearest-painting distance (``1 - |cos|``
of the feature vectors, :func:`monet_keras.evaluate.metrics.nearest_real`) with Kaggle's threshold and the
share of images under it, and below it the closest generated/painting pairs side by side.
Drawn with :func:`monet_keras.figures.plots.new_figure` (no pyplot, no display needed) and saved as PNG
by :func:`monet_keras.figures.plots.save`.
"""

import numpy as np
from matplotlib.figure import Figure

from monet_keras.figures import plots


def closest_pairs(generated_images, real_images, distances, indices, count=6):
    """The ``count`` generated images nearest to a painting, each with that painting.

    ``generated_images``, ``real_images``: ``features.ImageSource`` objects in the order the
    features were extracted; ``distances``, ``indices``: ``metrics.nearest_real``'s output.
    Returns ``[(generated, painting, distance), ...]``, closest first, images as [-1, 1] arrays.
    Only these few images are read again.
    """
    distances = np.asarray(distances, dtype=np.float64)
    valid = np.flatnonzero(~np.isnan(distances))
    chosen = valid[np.argsort(distances[valid], kind="stable")[:count]]
    generated = generated_images.pick(chosen)
    real = real_images.pick(indices[chosen])
    return [(generated[int(g)], real[int(indices[g])], float(distances[g])) for g in chosen]


def _show(axis, image):
    axis.imshow(plots.to_display(image))
    axis.set_xticks([])
    axis.set_yticks([])


def memorization_report(distances, threshold=0.1, pairs=(), subtitle="", path=None) -> Figure:
    """Figure: histogram of nearest-painting distances, share under ``threshold``, closest pairs.

    ``distances``: one per generated image (NaN for all-zero feature rows, which are left out, as
    Kaggle leaves them out). ``pairs``: :func:`closest_pairs`'s list (may be empty).
    ``subtitle``: e.g. the extractor's label, so the figure says what its numbers are worth.
    Saved as PNG to ``path`` when given. Returns the figure.
    """
    distances = np.asarray(distances, dtype=np.float64)
    finite = distances[~np.isnan(distances)]
    share = float(np.mean(finite < threshold)) if len(finite) else float("nan")
    mean = float(finite.mean()) if len(finite) else float("nan")
    columns = max(len(pairs), 1)
    figure = plots.new_figure(max(2.0 * columns, 8.0), 8.0 if pairs else 4.0)
    figure.set_layout_engine("constrained")
    grid = figure.add_gridspec(3 if pairs else 1, columns, height_ratios=[2, 1, 1] if pairs else [1])

    histogram = figure.add_subplot(grid[0, :])
    # exact copies can come out a hair below 0 (1 - |cos| with |cos| rounded above 1): keep them in range
    low = min(0.0, float(finite.min(initial=0.0)))
    high = max(1.1 * float(finite.max(initial=0.0)), 1.2 * threshold)
    histogram.hist(finite, bins=40, range=(low, high), color="#4c72b0")
    histogram.axvline(threshold, color="#c44e52", linestyle="--", label=f"threshold {threshold:g}")
    histogram.axvline(mean, color="#222222", linestyle=":", label=f"mean d = {mean:.4f}")
    histogram.set_xlabel("distance to the nearest painting (1 - |cos| of the features)")
    histogram.set_ylabel("generated images")
    histogram.set_title(f"{share:.1%} of {len(finite)} generated images are under the threshold"
                        + (f"\n{subtitle}" if subtitle else ""), fontsize=10)
    histogram.legend(loc="upper right")

    for column, (generated, painting, distance) in enumerate(pairs):
        top = figure.add_subplot(grid[1, column])
        _show(top, generated)
        top.set_title(f"d = {max(distance, 0.0):.4f}", fontsize=9)
        bottom = figure.add_subplot(grid[2, column])
        _show(bottom, painting)
        if column == 0:
            top.set_ylabel("generated")
            bottom.set_ylabel("nearest painting")
    return plots.save(figure, path)
