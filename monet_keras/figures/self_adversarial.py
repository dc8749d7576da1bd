"""The self-adversarial check (report Fig. 15, eq. 8).

A CycleGAN can "cheat" the cycle loss by hiding the input in a low-amplitude signal inside the
fake, which the reverse generator decodes (Chu et al. 2017, "CycleGAN, a master of
steganography"). Adding N(0, sigma) noise to the intermediate fake destroys such a signal: the
reconstruction then degrades far more than the noise alone explains. We reconstruct both ways,
photo -> Monet -> photo and Monet -> photo -> Monet, with and without the noise, and report the
mean L1 error of each reconstruction (images in [-1, 1]) and their gap.
"""

import dataclasses
import json
import logging

import keras
import numpy as np

from monet_keras.data.pipeline import first_images
from monet_keras.data.source import DataFolder
from monet_keras.figures import augmentation, plots
from monet_keras.model import augment
from monet_keras.train.run_folder import RunFolder
from tfrecords_tools.atomic import write_text

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SelfAdversarialResult:
    noise_std: float
    photo_l1: float  # mean |photo - G_photo(G_monet(photo))|
    photo_l1_noisy: float  # same with noise on G_monet(photo)
    monet_l1: float
    monet_l1_noisy: float

    @property
    def photo_gap(self):
        return self.photo_l1_noisy - self.photo_l1

    @property
    def monet_gap(self):
        return self.monet_l1_noisy - self.monet_l1


def _cycle(forward, backward, images, noise):
    fake = np.asarray(forward(images, training=False))
    clean = np.asarray(backward(fake, training=False))
    noisy = np.asarray(backward(fake + noise, training=False))
    return fake, clean, noisy


def self_adversarial_check(monet_generator, photo_generator, photos, monets, noise_std=0.08, seed=0,
                           save_path=None):
    """Reconstruct ``photos`` and ``monets`` (arrays in [-1, 1]) with and without noise.

    Returns ``(SelfAdversarialResult, Figure)``; the figure shows, per domain, the input, the
    translation, the reconstruction and the reconstruction from the noisy translation.
    """
    photos, monets = np.asarray(photos, np.float32), np.asarray(monets, np.float32)
    rng = np.random.default_rng(seed)
    photo_rows = _cycle(monet_generator, photo_generator, photos,
                        rng.normal(0, noise_std, photos.shape).astype(np.float32))
    monet_rows = _cycle(photo_generator, monet_generator, monets,
                        rng.normal(0, noise_std, monets.shape).astype(np.float32))
    result = SelfAdversarialResult(
        noise_std,
        float(np.mean(np.abs(photos - photo_rows[1]))), float(np.mean(np.abs(photos - photo_rows[2]))),
        float(np.mean(np.abs(monets - monet_rows[1]))), float(np.mean(np.abs(monets - monet_rows[2]))))
    figure = _figure(photos, photo_rows, monets, monet_rows, result)
    plots.save(figure, save_path)
    return result, figure


def _figure(photos, photo_rows, monets, monet_rows, result):
    n = max(len(photos), len(monets))
    figure = plots.new_figure(2.0 * n, 16.5)
    axes = figure.subplots(8, n, squeeze=False)
    labels = ("photo", "G_monet(photo)", "reconstructed", f"reconstructed\n+N(0,{result.noise_std:g})",
              "Monet", "G_photo(Monet)", "reconstructed", f"reconstructed\n+N(0,{result.noise_std:g})")
    rows = [photos, *photo_rows, monets, *monet_rows]
    for r, (images, label) in enumerate(zip(rows, labels)):
        shown = plots.to_display(images)
        for c in range(n):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(shown):
                ax.imshow(shown[c])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    figure.suptitle(f"self-adversarial check: L1 photo cycle {result.photo_l1:.3f} -> "
                    f"{result.photo_l1_noisy:.3f}, Monet cycle {result.monet_l1:.3f} -> "
                    f"{result.monet_l1_noisy:.3f} with noise", fontsize=10)
    return figure


# --- the `figures` command: the report's diagnostic figures for a finished run -----------------

def write_figures(run_dir, data=None, count=4):
    """Write Fig. 11 (augmentation), Fig. 13 (DiffAugment) and Fig. 15 (this check) into ``run_dir``;
    returns the paths written.

    Uses the run's ``config.json`` (image size, augmentation strengths, skip_corrupt) and its two
    saved generators; images come from ``data``: a data folder path or a DataFolder, maybe checked
    already (default: the run's data folder). A CUT run has no photo generator, so no cycle to
    check: it gets Figs. 11 and 13 only.
    """
    run = RunFolder(run_dir)
    config = run.read_config()
    if not isinstance(data, DataFolder):
        data = DataFolder.find(data or config.data_dir)
    if config.skip_corrupt:
        data = data.checked(skip_corrupt=True)
    size = config.image_size
    photos, monets = first_images(data.photo, size, count), first_images(data.monet, size, count)
    augmenter = augment.build_augmenter(size, config.aug_flip, config.aug_crop_fraction, config.aug_rotation,
                                        seed=config.seed)
    written = [run.augmentation_examples_png, run.diffaugment_examples_png]
    augmentation.augmentation_examples(photos, augmenter, n=count, save_path=written[0])
    augmentation.diffaugment_examples(photos, seed=config.seed, save_path=written[1])
    if config.model != "cyclegan":
        logger.info(f"no self-adversarial check: a {config.model} run has no photo generator "
                    f"to close a cycle")
        for path in written:
            logger.info(f"wrote {path}")
        return written
    written.append(run.self_adversarial_check_png)
    load = keras.saving.load_model
    result, _ = self_adversarial_check(load(run.monet_generator_keras), load(run.photo_generator_keras),
                                       photos, monets, save_path=written[2])
    summary = {**dataclasses.asdict(result), "photo_gap": result.photo_gap, "monet_gap": result.monet_gap}
    write_text(run.self_adversarial_check_json, json.dumps(summary, indent=2) + "\n")
    logger.info(f"self-adversarial check (noise {result.noise_std}): "
                f"photo cycle L1 {result.photo_l1:.4f} -> {result.photo_l1_noisy:.4f}, "
                f"Monet cycle L1 {result.monet_l1:.4f} -> {result.monet_l1_noisy:.4f}")
    for path in written:
        logger.info(f"wrote {path}")
    return written
