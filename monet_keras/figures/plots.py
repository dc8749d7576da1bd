"""The report's figures as functions: each returns a matplotlib Figure and can save a PNG.

Headless by construction (the Agg canvas is attached per figure; pyplot's global state is not
used), so they work in a notebook, under papermill and in CI alike.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tfrecords_tools.atomic import atomic_path

# Fig. 16 of the report: (a) G_monet, (b) G_photo, (c) D_monet, (d) D_photo, (e) cycle.
CURVES = (  # those a run's history has are drawn: a CycleGAN's are the report's Fig. 16 a-e
    ("monet_gen_loss", "Monet generator (adversarial)"),
    ("photo_gen_loss", "photo generator (adversarial)"),
    ("monet_disc_loss", "Monet discriminator"),
    ("photo_disc_loss", "photo discriminator"),
    ("cycle_loss", "cycle consistency"),
    ("nce_loss", "PatchNCE (CUT)"),
    ("nce_identity_loss", "PatchNCE identity (CUT)"),
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

    ``history``: rows as returned by :func:`monet_keras.train.run_folder.read_history`.
    """
    curves = [(key, label) for key, label in CURVES if any(key in row for row in history)] or CURVES[:5]
    figure = new_figure(16, 3.2)
    axes = figure.subplots(1, len(curves))
    epochs = [row["epoch"] for row in history]
    for ax, (key, label), letter in zip(axes, curves, "abcdefg"):
        values = [row.get(key, np.nan) for row in history]
        ax.plot(epochs, values, marker="o", markersize=3)
        ax.set_title(f"({letter}) {label}", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    return save(figure, save_path)


# --- data description (report Figs. 2 and 3) and the experiments' comparison --------------

DOMAIN_COLORS = {"monet": "tab:purple", "photo": "tab:green"}


def images_per_domain(counts, save_path=None):
    """Bar plot of the number of images in each domain (report Fig. 2).

    ``counts``: ``{"monet": n, "photo": n}`` as from :func:`monet_keras.figures.describe.count_images`.
    """
    figure = new_figure(4.5, 3.5)
    ax = figure.subplots()
    domains = list(counts)
    bars = ax.bar(domains, [counts[d] for d in domains],
                  color=[DOMAIN_COLORS.get(d, "tab:gray") for d in domains])
    ax.bar_label(bars, labels=[f"{counts[d]:,}" for d in domains])
    ax.set_ylabel("images")
    ax.set_title("images per domain")
    ax.margins(y=0.12)
    return save(figure, save_path)


def pixel_histograms(histograms, save_path=None):
    """Per-channel pixel-value distributions of each domain, one panel per domain (report Fig. 3).

    ``histograms``: ``{domain: (counts, n_images)}`` with ``counts`` of shape (3, 256) as from
    :func:`monet_keras.figures.describe.channel_histograms`. Each curve is normalised to sum to 1.
    """
    figure = new_figure(5.0 * len(histograms), 3.5)
    axes = figure.subplots(1, len(histograms), squeeze=False)[0]
    values = np.arange(256)
    for ax, (domain, (counts, n_images)) in zip(axes, histograms.items()):
        counts = np.asarray(counts, dtype=np.float64)
        for channel, color in enumerate(("red", "green", "blue")):
            total = counts[channel].sum()
            ax.plot(values, counts[channel] / total if total else counts[channel], color=color, lw=1.2,
                    label=color)
        ax.set_title(f"{domain} ({n_images} images)")
        ax.set_xlabel("pixel value")
        ax.set_xlim(0, 255)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("share of pixels")
    axes[0].legend(fontsize=8)
    return save(figure, save_path)


def variant_bars(variants, values, title, ylabel, reference=None, save_path=None, label="this run"):
    """Bars of one number per variant (e.g. the MiFID estimate), optionally beside reference bars.

    ``values``: one float (or NaN when missing) per variant. ``reference``: ``(label, values)``
    drawn as a second bar per variant, e.g. the report's Kaggle MiFID.
    """
    figure = new_figure(max(5.0, 1.3 * len(variants)), 3.8)
    ax = figure.subplots()
    x = np.arange(len(variants))
    width = 0.4 if reference else 0.7
    bars = ax.bar(x - (width / 2 if reference else 0), values, width, label=label)
    ax.bar_label(bars, labels=["" if not np.isfinite(v) else f"{v:.3g}" for v in values], fontsize=8)
    if reference:
        label, ref_values = reference
        ref_bars = ax.bar(x + width / 2, ref_values, width, label=label, color="tab:gray")
        ax.bar_label(ref_bars, labels=["" if not np.isfinite(v) else f"{v:.3g}" for v in ref_values],
                     fontsize=8)
        ax.legend(fontsize=8)
    ax.set_xticks(x)
    ax.set_xticklabels(variants)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.margins(y=0.12)
    return save(figure, save_path)


def time_budget(phases, budget_s=None, save_path=None):
    """Where a run's time went: one horizontal bar per phase (``{name: seconds}``, in order), their
    running total against the budget (a line; none without a budget)."""
    names, seconds = list(phases), np.asarray(list(phases.values()), dtype=np.float64)
    starts = np.concatenate([[0.0], np.cumsum(seconds)[:-1]])
    figure = new_figure(8, 0.5 * len(names) + 1.5)
    ax = figure.subplots()
    ax.barh(names, seconds, left=starts, color="tab:blue")
    ax.invert_yaxis()
    if budget_s is not None:
        ax.axvline(budget_s, color="tab:red", linestyle="--", label=f"budget {budget_s:.0f} s")
        ax.legend(loc="lower right")
    ax.set_xlabel("seconds since the run started")
    ax.set_title(f"where the time went: {seconds.sum():.0f} s")
    return save(figure, save_path)
