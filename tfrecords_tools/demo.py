"""A small, deterministic, unpaired demo data set in the exact Kaggle layout.

``make_demo(out_dir, ...)`` writes ``monet_tfrec/monetNN-COUNT.tfrec``,
``photo_tfrec/photoNN-COUNT.tfrec``, ``monet_jpg/NAME.jpg`` and ``photo_jpg/NAME.jpg`` (the
same JPEG bytes in both forms), with 10-hex-character names and ``target`` ``monet``/``photo``.
Paintings and photos are independently drawn scenes (:mod:`tfrecords_tools.scenes`), so the
data is unpaired. Image ``i`` of a domain depends only on ``(seed, domain, i)``: the same seed
gives byte-identical files, and asking for more images keeps the first ones unchanged.
"""

import os

import numpy as np

from tfrecords_tools import scenes, schema
from tfrecords_tools.errors import UserError
from tfrecords_tools.outdir import check_writable_dir, new_directory
from tfrecords_tools.records import write_shards

_DOMAIN_CODES = {"monet": 0, "photo": 1}
_NAME_STREAM = 2
MIN_SIZE = 16


def demo_image(domain, index, size, seed, quality=95):
    """JPEG bytes of image ``index`` of ``domain`` (``"monet"`` painting or ``"photo"``)."""
    rng = np.random.default_rng([seed, _DOMAIN_CODES[domain], index])
    render = scenes.render_painting if domain == "monet" else scenes.render_photo
    return scenes.to_jpeg(render(scenes.sample_scene(rng), size, rng), quality)


def demo_names(counts, seed):
    """``{domain: [name, ...]}``: unique 10-hex-character names, like Kaggle's file stems.

    Each domain draws from its own stream of ``seed``; a name already taken (by either domain)
    is drawn again, so the result depends only on ``seed`` and the counts.
    """
    taken = set()
    names = {}
    for domain in schema.DOMAINS:
        rng = np.random.default_rng([seed, _NAME_STREAM, _DOMAIN_CODES[domain]])
        names[domain] = []
        while len(names[domain]) < counts[domain]:
            name = f"{int(rng.integers(0, 2 ** 40)):010x}"
            if name not in taken:
                taken.add(name)
                names[domain].append(name)
    return names


def _check_params(counts, shards, size, seed):
    for domain in schema.DOMAINS:
        if counts[domain] < 1:
            raise UserError(f"bad number of {domain} images {counts[domain]}: need at least 1")
        if not 1 <= shards[domain] <= counts[domain]:
            raise UserError(f"bad number of {domain} shards {shards[domain]}: "
                                  f"need 1 to {counts[domain]} (one record per shard at least)")
    if size < MIN_SIZE:
        raise UserError(f"bad image size {size}: need at least {MIN_SIZE}")
    if seed < 0:
        raise UserError(f"bad seed {seed}: need 0 or more")


def make_demo(out_dir, n_monet=60, n_photos=120, size=256, seed=0, shards_monet=None, shards_photo=None,
              force=False, quality=95):
    """Write the demo data set to ``out_dir`` and return ``{domain: number of images}``.

    Shard counts default to Kaggle's (5 Monet, 20 photo files), at most one per image. The data
    is built in a temporary folder next to ``out_dir`` and renamed at the end, so an interrupted
    run leaves nothing that looks complete. Raises :class:`UserError` for bad parameters
    or if ``out_dir`` is a file or a non-empty folder (unless ``force``: then it is replaced).
    """
    counts = {"monet": n_monet, "photo": n_photos}
    shards = {"monet": shards_monet, "photo": shards_photo}
    shards = {d: min(schema.KAGGLE_SHARDS[d], counts[d]) if shards[d] is None else shards[d] for d in counts}
    _check_params(counts, shards, size, seed)
    check_writable_dir(out_dir, force)
    names = demo_names(counts, seed)
    with new_directory(out_dir, force) as tmp:
        for domain in schema.DOMAINS:
            records = [(name, demo_image(domain, i, size, seed, quality))
                       for i, name in enumerate(names[domain])]
            jpg_dir = os.path.join(tmp, schema.jpg_dir(domain))
            os.mkdir(jpg_dir)
            for name, jpeg in records:
                with open(os.path.join(jpg_dir, name + ".jpg"), "wb") as f:
                    f.write(jpeg)
            tfrec_dir = os.path.join(tmp, schema.tfrec_dir(domain))
            os.mkdir(tfrec_dir)
            write_shards(records, tfrec_dir, domain, shards[domain])
    return counts
