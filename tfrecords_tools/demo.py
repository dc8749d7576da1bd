"""A small, deterministic, unpaired demo data set in the exact Kaggle layout.

``make_demo(out_dir, ...)`` writes ``monet_tfrec/monetNN-COUNT.tfrec``,
``photo_tfrec/photoNN-COUNT.tfrec``, ``monet_jpg/NAME.jpg`` and ``photo_jpg/NAME.jpg`` (the
same JPEG bytes in both forms), with 10-hex-character names and ``target`` ``monet``/``photo``.
Paintings and photos are independently drawn scenes (:mod:`tfrecords_tools.scenes`), so the
data is unpaired. Image ``i`` of a domain depends only on ``(seed, domain, i)``: the same seed
gives byte-identical files, and asking for more images keeps the first ones unchanged.

``demo_pairs(n, ...)`` is the known answer for a benchmark: ``n`` held-out scenes, each rendered
both as a photo and as a painting, from a stream of their own (no scene of ``make_demo``'s).
"""

import io
import os

import numpy as np
from PIL import Image

from tfrecords_tools import scenes, schema
from tfrecords_tools.errors import UserError
from tfrecords_tools.outdir import check_writable_dir, new_directory
from tfrecords_tools.records import write_shards

_DOMAIN_CODES = {"monet": 0, "photo": 1}
_NAME_STREAM = 2
_PAIR_STREAM = 3
MIN_SIZE = 16


def demo_image(domain, index, size, seed, quality=95):
    """JPEG bytes of image ``index`` of ``domain`` (``"monet"`` painting or ``"photo"``)."""
    rng = np.random.default_rng([seed, _DOMAIN_CODES[domain], index])
    render = scenes.render_painting if domain == "monet" else scenes.render_photo
    return scenes.to_jpeg(render(scenes.sample_scene(rng), size, rng), quality)


def demo_pair(index, size, seed, quality=95):
    """JPEG bytes ``(photo, painting)`` of held-out scene ``index``: one scene, two renders.

    Both renders start from the same generator state, so the draws of the scene's render (hill
    texture, ripples, grass) are the same in both and the painting is the painting style
    (:func:`~tfrecords_tools.scenes.render_painting`: soft edges, Monet grade, brush strokes)
    applied to exactly the scene the photo shows. Everything depends only on ``(seed, index)``.
    """
    rng = np.random.default_rng([seed, _PAIR_STREAM, index])
    scene = scenes.sample_scene(rng)
    render_seed = rng.integers(2 ** 63)
    photo = scenes.render_photo(scene, size, np.random.default_rng(render_seed))
    painting = scenes.render_painting(scene, size, np.random.default_rng(render_seed))
    return scenes.to_jpeg(photo, quality), scenes.to_jpeg(painting, quality)


def demo_pairs(n, size=256, seed=0, quality=95):
    """``(photos, paintings)``: two uint8 ``(n, size, size, 3)`` arrays, pair ``i`` from
    :func:`demo_pair`, decoded from JPEG as the demo data set stores its images. The training
    data stays unpaired: :func:`make_demo`'s images are other scenes, drawn independently."""
    if n < 1:
        raise UserError(f"bad number of pairs {n}: need at least 1")
    if size < MIN_SIZE:
        raise UserError(f"bad image size {size}: need at least {MIN_SIZE}")
    if seed < 0:
        raise UserError(f"bad seed {seed}: need 0 or more")
    pairs = [[_decode(jpeg) for jpeg in demo_pair(i, size, seed, quality)] for i in range(n)]
    photos, paintings = zip(*pairs)
    return np.stack(photos), np.stack(paintings)


def _decode(jpeg):
    with Image.open(io.BytesIO(jpeg)) as image:
        return np.asarray(image.convert("RGB"))


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
