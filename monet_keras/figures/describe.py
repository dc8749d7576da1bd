"""Data description: how many images each domain has, and their per-channel pixel histograms.

The numbers behind the report's Fig. 2 (images per domain) and Fig. 3 (pixel histograms);
:func:`monet_keras.figures.plots.images_per_domain` and
:func:`monet_keras.figures.plots.pixel_histograms` draw them.
"""

import numpy as np

from monet_keras.data.pipeline import iterate, list_names, load_images
from monet_keras.data.source import DataFolder, DomainFiles
from tfrecords_tools import schema

CHANNELS = ("red", "green", "blue")


def count_images(data: DataFolder):
    """``{"monet": n, "photo": n}``: the images of each domain of a data folder.

    Counts records (or JPEG files) one by one, so it is exact whatever the shard names say; the
    records a check marked to skip are not counted.
    """
    return {domain: len(list_names(data.domain(domain))) for domain in schema.DOMAINS}


def channel_histograms(files: DomainFiles, max_images=None):
    """Per-channel histograms of 8-bit pixel values of the first ``max_images`` images of ``files``.

    Pixels are the decoded JPEG values at the stored size (no resize), 0..255. Returns
    ``(counts, n_images)``: ``counts`` is an int64 array of shape (3, 256), row c holding how
    many pixels of channel c (red, green, blue) have each value; ``n_images`` how many images
    were read (all of them when ``max_images`` is None).
    """
    images = load_images(files)
    if max_images is not None:
        images = images.take(max_images)
    counts = np.zeros((3, 256), dtype=np.int64)
    n_images = 0
    for image in iterate(files, images):
        # decode_image scales x -> x / 127.5 - 1; undo it exactly and round back to the byte
        pixels = np.clip(np.rint((image + 1.0) * 127.5), 0, 255).astype(np.int64).reshape(-1, 3)
        for channel in range(3):
            counts[channel] += np.bincount(pixels[:, channel], minlength=256)[:256]
        n_images += 1
    return counts, n_images
