"""The report's figures as functions: each returns a matplotlib Figure and can save a PNG.

Headless by construction (the Agg canvas is attached per figure; pyplot's global state is not
used), so they work in a notebook, under papermill and in CI alike.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from monet_keras.atomic import atomic_path

# Fig. 16 of the report: (a) G_monet, (b) G_photo, (c) D_monet, (d) D_photo, (e) cycle.
CURVES = (
    ("monet_gen_loss", "Monet generator (adversarial)"),
    ("photo_gen_loss", "photo generator (adversarial)"),
    ("monet_disc_loss", "Monet discriminator"),
    ("photo_disc_loss", "photo discriminator"),
    ("cycle_loss", "cycle consistency"),
)


def new_figure(width, height):
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save(figure, save_path, dpi=100):
    """Write ``figure`` as PNG atomically; returns the figure."""
    if save_path:
        with atomic_path(save_path, suffix=".png") as tmp:
            figure.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return figure


def to_display(images):
    """[-1, 1] images -> [0, 1] for imshow."""
    return np.clip((np.asarray(images, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)


def translation_grid(photos, fakes, title=None, save_path=None, labels=("photo", "Monet-style")):
    """Pairs of input and translation, one pair per column (report Fig. 17)."""
    photos, fakes = to_display(photos), to_display(fakes)
    n = len(photos)
    figure = new_figure(2.0 * n, 4.3)
    axes = figure.subplots(2, n, squeeze=False)
    for i in range(n):
        for row, images in enumerate((photos, fakes)):
            ax = axes[row][i]
            ax.imshow(images[i])
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(labels[row])
    if title:
        figure.suptitle(title)
    return save(figure, save_path)


def learning_curves(history, save_path=None):
    """Generator, discriminator and cycle losses per epoch (report Fig. 16 a-e).

    ``history``: rows as returned by :func:`monet_keras.callbacks.read_history`.
    """
    figure = new_figure(16, 3.2)
    axes = figure.subplots(1, len(CURVES))
    epochs = [row["epoch"] for row in history]
    for ax, (key, label), letter in zip(axes, CURVES, "abcde"):
        values = [row.get(key, np.nan) for row in history]
        ax.plot(epochs, values, marker="o", markersize=3)
        ax.set_title(f"({letter}) {label}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    return save(figure, save_path)
