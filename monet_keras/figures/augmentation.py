"""Figures of the augmentations: report Fig. 11 (training augmentation) and Fig. 13 (DiffAugment).

Each function returns a matplotlib Figure from :func:`monet_keras.figures.plots.new_figure`
(headless, no pyplot state) and, given ``save_path``, also writes it as a PNG atomically
(:func:`monet_keras.figures.plots.save`). Images are NHWC arrays or tensors in [-1, 1]; they are
shown as ``clip((x + 1) / 2, 0, 1)`` (DiffAugment's colour ops can leave [-1, 1]).
"""

import numpy as np
from matplotlib.figure import Figure

from monet_keras.errors import MonetKerasError
from monet_keras.figures import plots
from monet_keras.model import diffaugment

DIFFAUGMENT_COLUMNS = ("brightness", "contrast", "saturation", "translation", "cutout")

_CELL_INCHES = 1.6


def augmentation_examples(images, augmenter, n=4, save_path=None) -> Figure:
    """Originals in the top row; below them ``n`` rows, each one independent call of
    ``augmenter(images, training=True)`` (one column per image)."""
    originals = _as_numpy(images)
    rows = [originals] + [_as_numpy(augmenter(originals, training=True)) for _ in range(n)]
    labels = ["original"] + [f"augmented {i + 1}" for i in range(n)]
    fig, axes = _grid(len(rows), len(originals))
    for r, (batch, label) in enumerate(zip(rows, labels)):
        for c, image in enumerate(batch):
            _show(axes[r][c], image)
        axes[r][0].set_ylabel(label, fontsize=8)
    fig.suptitle("Training augmentation: flip, crop, rotation", fontsize=10)
    return _finish(fig, save_path)


def diffaugment_examples(images, seed=0, save_path=None) -> Figure:
    """One row per image; columns: the original, then each DiffAugment op of
    ``DIFFAUGMENT_COLUMNS`` applied alone (``diff_augment(images, policy=op, seed=seed)``)."""
    originals = _as_numpy(images)
    columns = [("original", originals)] + [
        (name, _as_numpy(diffaugment.diff_augment(originals, policy=name, seed=seed)))
        for name in DIFFAUGMENT_COLUMNS
    ]
    fig, axes = _grid(len(originals), len(columns))
    for c, (name, batch) in enumerate(columns):
        axes[0][c].set_title(name, fontsize=8)
        for r, image in enumerate(batch):
            _show(axes[r][c], image)
    fig.suptitle("DiffAugment, one op per column", fontsize=10)
    return _finish(fig, save_path)


def _as_numpy(images):
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise MonetKerasError(f"bad images for a figure: expected an NHWC RGB batch, got shape {array.shape}")
    return array


def _grid(rows, cols):
    fig = plots.new_figure(cols * _CELL_INCHES, rows * _CELL_INCHES + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _show(ax, image):
    ax.imshow(plots.to_display(image), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def _finish(fig, save_path):
    fig.tight_layout()
    return plots.save(fig, save_path)
