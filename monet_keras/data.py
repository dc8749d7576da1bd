"""Kaggle-layout readers and the paired training dataset (Os / Us).

A data folder has the competition layout: ``monet_tfrec/*.tfrec`` and ``photo_tfrec/*.tfrec``
(TFRecords in the schema of :mod:`tfrecords_tools.schema`) and/or ``monet_jpg/*.jpg`` and
``photo_jpg/*.jpg``. TFRecords are preferred when both are there (they are what a TPU reads).
Images are decoded to float32 in [-1, 1] and resized (bilinear, antialiased) to the configured
size when it differs from the stored one.

Sampling (design notes):

- **Os** (over-sampling): one epoch shows every photo once; the Monet paintings repeat,
  reshuffled on each pass, to pair with them. Steps per epoch = n_photo // batch.
- **Us** (under-sampling): one epoch shows every Monet once, each paired with a photo from a
  fresh random subset of the photos of the same size. Steps per epoch = n_monet // batch.

Both reshuffle every epoch from a seeded order, drop the last partial batch and prefetch.
Batches are ``(real_monet, real_photo)`` tuples of shape (B, S, S, 3).
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from monet_keras.errors import MonetKerasError
from tfrecords_tools import schema
from tfrecords_tools.images import check_jpeg
from tfrecords_tools.records import iter_records
from tfrecords_tools.scan import scan

AUTOTUNE = tf.data.AUTOTUNE
JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class DomainFiles:
    """Where one domain's images are: ``kind`` is ``"tfrecord"`` or ``"jpeg"``."""

    domain: str
    kind: str
    paths: tuple

    @property
    def where(self):
        return os.path.dirname(self.paths[0])


# tf.io.gfile so the same code reads local folders and the GCS bucket a Kaggle TPU needs.

def _jpegs_in(folder):
    return tuple(sorted(p for p in tf.io.gfile.glob(os.path.join(folder, "*"))
                        if p.lower().endswith(JPEG_SUFFIXES) and not tf.io.gfile.isdir(p)))


def _tfrecs_in(folder):
    return tuple(sorted(tf.io.gfile.glob(os.path.join(folder, "*.tfrec"))))


def find_domain(data_dir, domain):
    """The TFRecords (preferred) or JPEGs of ``domain`` in a Kaggle-layout folder."""
    data_dir = os.fspath(data_dir)
    if not tf.io.gfile.isdir(data_dir):
        raise MonetKerasError(f"data folder not found: {data_dir}")
    tfrec_dir = os.path.join(data_dir, schema.tfrec_dir(domain))
    jpg_dir = os.path.join(data_dir, schema.jpg_dir(domain))
    if tf.io.gfile.isdir(tfrec_dir) and _tfrecs_in(tfrec_dir):
        return DomainFiles(domain, "tfrecord", _tfrecs_in(tfrec_dir))
    if tf.io.gfile.isdir(jpg_dir) and _jpegs_in(jpg_dir):
        return DomainFiles(domain, "jpeg", _jpegs_in(jpg_dir))
    if tf.io.gfile.isdir(tfrec_dir) or tf.io.gfile.isdir(jpg_dir):
        raise MonetKerasError(f"no {domain} images in {data_dir}: {schema.tfrec_dir(domain)}/ has no .tfrec files "
                              f"and {schema.jpg_dir(domain)}/ has no .jpg files")
    raise MonetKerasError(f"{data_dir} is not a Kaggle-layout data folder: neither "
                          f"{schema.tfrec_dir(domain)}/ nor {schema.jpg_dir(domain)}/ exists")


def find_images(path, domain="photo"):
    """Images at ``path``: a Kaggle-layout root, a folder of JPEGs or .tfrec files, or one .tfrec file."""
    path = os.fspath(path)
    if os.path.isfile(path) and path.endswith(".tfrec"):
        return DomainFiles(domain, "tfrecord", (path,))
    if not os.path.isdir(path):
        raise MonetKerasError(f"image folder not found: {path}")
    if any(os.path.isdir(os.path.join(path, sub)) for sub in (schema.tfrec_dir(domain), schema.jpg_dir(domain))):
        return find_domain(path, domain)
    if _tfrecs_in(path):
        return DomainFiles(domain, "tfrecord", _tfrecs_in(path))
    if _jpegs_in(path):
        return DomainFiles(domain, "jpeg", _jpegs_in(path))
    raise MonetKerasError(f"no .jpg or .tfrec files in {path}")


# --- raw records: (name, jpeg bytes) -------------------------------------------------------

def _record_key(path, index=None):
    """How a record is named for skipping: ``path#index`` inside a TFRecord file, else the path."""
    return path if index is None else f"{path}#{index}"


def _raw_records(files: DomainFiles, skip=frozenset()):
    """Unbatched dataset of ``(name, jpeg_bytes)`` string pairs, in file order.

    ``skip``: record keys (:func:`_record_key`) to leave out. When it is not empty the reader
    also stops quietly at a truncated TFRecord file instead of failing (skip-corrupt mode).
    """
    if files.kind == "tfrecord":
        def keyed(path):
            records = tf.data.TFRecordDataset(path).enumerate()
            return records.map(lambda i, r: (tf.strings.join([path, "#", tf.strings.as_string(i)]), r))

        def parse(_key, serialized):
            record = schema.parse_example(serialized)
            return record["image_name"], record["image"]
        records = tf.data.Dataset.from_tensor_slices(list(files.paths)).flat_map(keyed)
        if skip:  # stop quietly at a truncated file; bad records are dropped before parsing
            records = records.ignore_errors()
        return _without(records, skip).map(parse, num_parallel_calls=AUTOTUNE)
    names = [os.path.splitext(os.path.basename(p))[0] for p in files.paths]
    records = _without(tf.data.Dataset.from_tensor_slices((list(files.paths), names)), skip)
    return records.map(lambda path, name: (name, tf.io.read_file(path)), num_parallel_calls=AUTOTUNE)


def _without(records, keys):
    """``records`` (pairs) less those whose first component is in ``keys``.

    Used for record keys to skip (before parsing) and for image names to exclude (after it).
    """
    if not keys:
        return records
    left_out = tf.constant(sorted(keys))
    return records.filter(lambda key, _: tf.logical_not(tf.reduce_any(tf.equal(key, left_out))))


def check_domain(files: DomainFiles, skip_corrupt=False, log=print):
    """Decode every image of ``files`` once, before training; return the record keys to skip.

    All images must be readable RGB JPEGs of one size (that of the first image). By default any
    problem raises MonetKerasError naming the first one (file and record) and the count; with
    ``skip_corrupt`` the bad records are counted, reported and returned for skipping. Folders
    on GCS (a TPU's ``gs://`` paths) are not checked.
    """
    if files.where.startswith("gs://"):
        return frozenset()
    paths = list(files.paths) if files.kind == "tfrecord" else [files.where]
    report = scan(paths, expected_size=_first_image_size(files))
    if report.ok:
        return frozenset()
    problems = report.problems
    if not skip_corrupt:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise MonetKerasError(
            f"bad {files.domain} data: {problems[0]}{more}; list all with `python -m tfrecords_tools inspect "
            f"{files.where}`, or skip them with --set skip_corrupt=true")
    log(f"warning: skipping {len(problems)} unreadable or odd {files.domain} record(s) (skip_corrupt), "
        f"first: {problems[0]}")
    return frozenset(_record_key(p.path, p.index) for p in problems)


def skip_keys(files: DomainFiles, skip_corrupt, log=print):
    """Record keys to leave out when reading ``files`` after training: with ``skip_corrupt`` a full
    :func:`check_domain` (the bad records it counts), else none, without reading anything."""
    return check_domain(files, skip_corrupt=True, log=log) if skip_corrupt else frozenset()


def _first_image_size(files):
    """Side of the first decodable image: the size every other image must have."""
    if files.kind == "jpeg":
        blobs = (_read_bytes(p) for p in files.paths)
    else:
        blobs = (record["image"] for path in files.paths
                 for _, record, _problem in iter_records(path) if record is not None)
    for blob in blobs:
        info, _ = check_jpeg(blob)
        if info is not None:
            return info.width
    return None


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def list_names(files: DomainFiles, skip=frozenset()):
    """Image names (file stems / ``image_name`` features) in file order, without decoding."""
    if files.kind == "jpeg" and not skip:
        return [os.path.splitext(os.path.basename(p))[0] for p in files.paths]
    try:
        return [n.decode("utf-8") for n, _ in _raw_records(files, skip).as_numpy_iterator()]
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        raise MonetKerasError(f"cannot read {files.domain} TFRecords in {files.where}: "
                              f"{e.message.splitlines()[0]}") from None


def decode_image(jpeg_bytes, image_size=None):
    """JPEG bytes -> float32 (S, S, 3) in [-1, 1]; resized (bilinear, antialias) if ``image_size`` differs.

    The accurate integer DCT is libjpeg's default, so pixels match PIL's decode (and the
    metrics' reader) rather than TensorFlow's faster approximation.
    """
    image = tf.io.decode_jpeg(jpeg_bytes, channels=3, dct_method="INTEGER_ACCURATE")
    image = tf.cast(image, tf.float32)
    if image_size is not None:
        shape = tf.shape(image)
        if_resize = tf.logical_or(tf.not_equal(shape[0], image_size), tf.not_equal(shape[1], image_size))
        image = tf.cond(if_resize,
                        lambda: tf.image.resize(image, (image_size, image_size), antialias=True),
                        lambda: image)
        image = tf.ensure_shape(image, (image_size, image_size, 3))
    return image / 127.5 - 1.0


def load_images(files: DomainFiles, image_size=None, with_names=False, exclude=(), skip=frozenset()):
    """Unbatched dataset of decoded images (or ``(name, image)`` pairs), in file order.

    ``exclude``: names to leave out (e.g. the held-out Monet paintings); ``skip``: record keys
    from :func:`check_domain`.
    """
    records = _without(_raw_records(files, skip), exclude)
    if with_names:
        return records.map(lambda name, data: (name, decode_image(data, image_size)), num_parallel_calls=AUTOTUNE)
    return records.map(lambda _, data: decode_image(data, image_size), num_parallel_calls=AUTOTUNE)


def first_images(files: DomainFiles, image_size, count, skip=frozenset()):
    """The first ``count`` images of ``files`` as one float32 array (for figures and samples).

    ``skip``: record keys from :func:`check_domain`; without it, an unreadable image among the
    first ones raises MonetKerasError.
    """
    try:
        return next(iter(load_images(files, image_size, skip=skip).batch(count))).numpy()
    except tf.errors.OpError as e:
        raise MonetKerasError(f"cannot read the first {count} {files.domain} images in {files.where}: "
                              f"{e.message.splitlines()[0]}") from None


def split_holdout(names, count, seed):
    """Deterministically choose ``count`` names to hold out; returns (train_names, holdout_names)."""
    names = sorted(names)
    if count == 0:
        return names, []
    if count >= len(names):
        raise MonetKerasError(f"bad parameter holdout_monet={count}: only {len(names)} Monet paintings")
    order = np.random.default_rng(seed).permutation(len(names))
    held = sorted(names[i] for i in order[:count])
    held_set = set(held)
    return [n for n in names if n not in held_set], held


# --- the paired training dataset ------------------------------------------------------------

@dataclasses.dataclass
class TrainingData:
    """The paired dataset and what it is made of."""

    dataset: tf.data.Dataset
    steps_per_epoch: int
    monet: DomainFiles
    photo: DomainFiles
    n_monet: int  # paintings used for training (after the hold-out)
    n_photo: int
    holdout_names: list
    skip: frozenset  # keys of records skipped as unreadable (skip_corrupt)


def _shuffled_images(files, count, image_size, seed, exclude=(), skip=frozenset()):
    """Records reshuffled on every pass (seeded), decoded after shuffling so the buffer holds bytes."""
    records = _without(_raw_records(files, skip), exclude)
    records = records.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return records.map(lambda _, data: decode_image(data, image_size), num_parallel_calls=AUTOTUNE)


def paired_dataset(monet: DomainFiles, photo: DomainFiles, n_monet, n_photo, sampling, batch_size,
                   image_size, seed, exclude_monet=(), repeat=False, skip=frozenset()):
    """``(real_monet, real_photo)`` batches with Os or Us semantics; returns (dataset, steps per epoch).

    ``repeat=True`` makes it endless (for a fixed ``steps_per_epoch``); ``skip``: record keys
    of both domains from :func:`check_domain`.
    """
    monet_ds = _shuffled_images(monet, n_monet, image_size, seed, exclude=exclude_monet, skip=skip)
    photo_ds = _shuffled_images(photo, n_photo, image_size, seed + 1, skip=skip)
    if sampling == "over":
        monet_ds = monet_ds.repeat()
        steps = n_photo // batch_size
    elif sampling == "under":
        photo_ds = photo_ds.repeat().take(n_monet)
        steps = n_monet // batch_size
    else:
        raise MonetKerasError(f"bad parameter sampling={sampling!r}: expected over or under")
    if steps < 1:
        raise MonetKerasError(f"bad parameter batch_size={batch_size}: larger than an epoch "
                              f"({n_monet} Monet, {n_photo} photos, sampling={sampling})")
    dataset = tf.data.Dataset.zip((monet_ds, photo_ds)).batch(batch_size, drop_remainder=True)
    if repeat:
        dataset = dataset.repeat()
    else:
        # TFRecord and filtered datasets have unknown length; stating it lets Keras start a
        # fresh (reshuffled) pass every epoch instead of running the exhausted iterator dry.
        dataset = dataset.take(steps).apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(AUTOTUNE), steps


def training_data(config, data_dir=None, log=print):
    """The training dataset for ``config`` (an ExperimentConfig) from a Kaggle-layout folder.

    Every image is checked first (:func:`check_domain`), so bad data stops the run before
    training starts, or is skipped with ``config.skip_corrupt``.
    """
    data_dir = data_dir or config.data_dir
    monet = find_domain(data_dir, "monet")
    photo = find_domain(data_dir, "photo")
    skip = check_domain(monet, config.skip_corrupt, log) | check_domain(photo, config.skip_corrupt, log)
    monet_names = list_names(monet, skip)
    n_photo = len(list_names(photo, skip))
    if not monet_names or not n_photo:
        raise MonetKerasError(f"no readable {'Monet' if not monet_names else 'photo'} images in {data_dir}")
    train_names, held = split_holdout(monet_names, config.holdout_monet, config.seed)
    dataset, steps = paired_dataset(
        monet, photo, len(train_names), n_photo, config.sampling, config.batch_size, config.image_size,
        config.seed, exclude_monet=held, repeat=config.steps_per_epoch is not None, skip=skip)
    return TrainingData(dataset, config.steps_per_epoch or steps, monet, photo, len(train_names), n_photo, held,
                        skip)
