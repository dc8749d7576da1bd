"""Readers of a domain's files and the paired training dataset (Os / Us).

Every reader takes a :class:`~monet_keras.data.source.DomainFiles` (found by
:mod:`monet_keras.data.source`) and leaves out the records its check marked to skip, so
skip-corrupt travels with the files. Images are decoded to float32 in [-1, 1] and resized
(bilinear, antialiased) to the configured size when it differs from the stored one. A read
error on files that were not checked becomes one MonetKerasError naming the first bad record
(:func:`read_error`).

Sampling (design notes):

- **Os** (over-sampling): one epoch shows every photo once; the Monet paintings repeat,
  reshuffled on each pass, to pair with them. Steps per epoch = n_photo // batch.
- **Us** (under-sampling): one epoch shows every Monet once, each paired with a photo from a
  fresh random subset of the photos of the same size. Steps per epoch = n_monet // batch.

Both reshuffle every epoch from a seeded order, drop the last partial batch and prefetch.
Batches are ``(real_monet, real_photo)`` tuples of shape (B, S, S, 3).
"""

import dataclasses
import logging
import os

import numpy as np
import tensorflow as tf

from monet_keras.data.source import SKIP_HINT, DataFolder, DomainFiles, record_key
from monet_keras.errors import MonetKerasError
from tfrecords_tools import schema
from tfrecords_tools.records import iter_records, tf_message

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
_READ_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError)


# --- raw records: (name, jpeg bytes) -------------------------------------------------------

def _without_autotuning(dataset):
    """``dataset`` with tf.data's autotuning off, for every dataset built on it.

    The autotuner's thread sleeps through its optimisation period (growing to a minute) without
    waking when its iterator is deleted, and the deletion waits for it: a stall of up to a minute
    at the end of ``fit``, of every epoch that re-iterates the dataset and of images.zip. Off, a
    parallel map uses every core and the input still outruns training many times over
    (benchmarks/README.md)."""
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def _raw_records(files: DomainFiles):
    """Unbatched dataset of ``(name, jpeg_bytes)`` string pairs, in file order, less the records
    ``files.skip`` marks. When some are marked the reader also stops quietly at a truncated
    TFRecord file instead of failing (the check marked the record where it breaks). tf.data's
    autotuning is off for it and everything read from it (:func:`_without_autotuning`)."""
    skip = files.skip or frozenset()
    if files.kind == "tfrecord":
        def keyed(path):  # record keys as source.record_key writes them: path#index
            records = tf.data.TFRecordDataset(path).enumerate()
            return records.map(lambda i, r: (tf.strings.join([path, "#", tf.strings.as_string(i)]), r))

        def parse(_key, serialized):
            record = schema.parse_example(serialized)
            return record["image_name"], record["image"]
        records = _without_autotuning(tf.data.Dataset.from_tensor_slices(list(files.paths)).flat_map(keyed))
        if skip:  # stop quietly at a truncated file; bad records are dropped before parsing
            records = records.ignore_errors()
        return _without(records, skip).map(parse, num_parallel_calls=AUTOTUNE)
    names = [_stem(p) for p in files.paths]
    records = _without_autotuning(tf.data.Dataset.from_tensor_slices((list(files.paths), names)))
    records = _without(records, skip)
    return records.map(lambda path, name: (name, tf.io.read_file(path)), num_parallel_calls=AUTOTUNE)


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _without(records, keys):
    """``records`` (pairs) less those whose first component is in ``keys``.

    Used for record keys to skip (before parsing) and for image names to exclude (after it).
    """
    if not keys:
        return records
    left_out = tf.constant(sorted(keys))
    return records.filter(lambda key, _: tf.logical_not(tf.reduce_any(tf.equal(key, left_out))))


def read_error(files: DomainFiles, error):
    """The one-line MonetKerasError for a TensorFlow ``error`` met while reading ``files``.

    TensorFlow's message names no file, so the files are checked (files not checked yet only):
    the error names the first bad record and how to skip it; else it is the error's own text.
    """
    try:
        files.checked(skip_corrupt=False)
    except MonetKerasError as named:
        return named
    return MonetKerasError(f"cannot read {files.domain} images in {files.where}: {tf_message(error)}")


def iterate(files: DomainFiles, dataset):
    """The elements of ``dataset``, read from ``files``, as numpy values; a read error is
    :func:`read_error`'s."""
    try:
        yield from dataset.as_numpy_iterator()
    except _READ_ERRORS as e:
        raise read_error(files, e) from None


def encoded_images(files: DomainFiles):
    """``(where, name, jpeg_bytes)`` of every image of ``files`` in file order, read in plain
    Python (for readers that decode with PIL), less the records ``files.skip`` marks.

    ``where`` names the file (and record). A record that cannot be read and is not marked raises
    MonetKerasError naming it.
    """
    skip = files.skip or frozenset()
    for path in files.paths:
        if files.kind == "jpeg":
            if path not in skip:
                with tf.io.gfile.GFile(path, "rb") as f:
                    yield path, _stem(path), f.read()
            continue
        for index, record, problem in iter_records(path):
            if record_key(path, index) in skip:
                continue
            if problem is not None:
                raise MonetKerasError(f"cannot read {path}: record {index}: {problem}; {SKIP_HINT}")
            yield f"{path}: record {index}", record["image_name"], record["image"]


def list_names(files: DomainFiles):
    """Image names (file stems / ``image_name`` features) in file order, without decoding."""
    if files.kind == "jpeg" and not files.skip:
        return [_stem(p) for p in files.paths]
    return [n.decode("utf-8") for n, _ in iterate(files, _raw_records(files))]


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


def load_images(files: DomainFiles, image_size=None, with_names=False, exclude=()):
    """Unbatched dataset of decoded images (or ``(name, image)`` pairs), in file order.

    ``exclude``: names to leave out (e.g. the held-out Monet paintings).
    """
    records = _without(_raw_records(files), exclude)
    if with_names:
        return records.map(lambda name, data: (name, decode_image(data, image_size)),
                           num_parallel_calls=AUTOTUNE)
    return records.map(lambda _, data: decode_image(data, image_size), num_parallel_calls=AUTOTUNE)


def first_images(files: DomainFiles, image_size, count):
    """The first ``count`` images of ``files`` as one float32 array (for figures and samples)."""
    batch = next(iterate(files, load_images(files, image_size).batch(count)), None)
    if batch is None:
        raise MonetKerasError(f"no {files.domain} images to read in {files.where}")
    return batch


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


def _shuffled_images(files, count, image_size, seed, exclude=()):
    """Records reshuffled on every pass (seeded), decoded after shuffling so the buffer holds bytes."""
    records = _without(_raw_records(files), exclude)
    records = records.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return records.map(lambda _, data: decode_image(data, image_size), num_parallel_calls=AUTOTUNE)


def paired_dataset(monet: DomainFiles, photo: DomainFiles, n_monet, n_photo, sampling, batch_size,
                   image_size, seed, exclude_monet=(), repeat=False):
    """``(real_monet, real_photo)`` batches with Os or Us semantics; returns (dataset, steps per epoch).

    ``repeat=True`` makes it endless (for a fixed ``steps_per_epoch``).
    """
    monet_ds = _shuffled_images(monet, n_monet, image_size, seed, exclude=exclude_monet)
    photo_ds = _shuffled_images(photo, n_photo, image_size, seed + 1)
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


def training_data(config, data: DataFolder = None):
    """The training dataset for ``config`` (an ExperimentConfig) from a Kaggle-layout folder.

    ``data``: the folder's files, maybe checked already (the notebook's); default: found at
    ``config.data_dir``. Every image is checked first (once: checked files are not read again),
    so bad data stops the run before training starts, or is skipped with ``config.skip_corrupt``.
    """
    data = (data or DataFolder.find(config.data_dir)).checked(config.skip_corrupt)
    monet_names = list_names(data.monet)
    n_photo = len(list_names(data.photo))
    if not monet_names or not n_photo:
        raise MonetKerasError(f"no readable {'Monet' if not monet_names else 'photo'} images in {data.root}")
    train_names, held = split_holdout(monet_names, config.holdout_monet, config.seed)
    dataset, steps = paired_dataset(
        data.monet, data.photo, len(train_names), n_photo, config.sampling, config.batch_size,
        config.image_size, config.seed, exclude_monet=held, repeat=config.steps_per_epoch is not None)
    return TrainingData(dataset, config.steps_per_epoch or steps, data.monet, data.photo,
                        len(train_names), n_photo, held)
