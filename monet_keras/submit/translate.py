"""Photos -> ``images.zip``: translate every photo with a saved generator and stream the JPEGs into a zip.

The pipeline, for N photos and batch size B:

1. tf.data reads the photos (TFRecords or JPEGs, :mod:`monet_keras.data.pipeline`), decodes them to
   float32 in [-1, 1] at the generator's input size S (bilinear, antialiased resize when the
   photos are not S x S) and batches them, prefetching in the background;
2. one traced ``tf.function`` per batch: ``generator(x, training=False)``, in bfloat16 on a CPU
   with bfloat16 instructions, else float32 (``precision``, see
   :func:`monet_keras.accel.policy.inference_precision`); when S != 256 the output is resized
   to 256x256 (bilinear, antialiased); then ``round((y + 1) * 127.5)`` clipped to uint8;
3. a worker thread JPEG-encodes that batch with Pillow (``quality``, default 95; Pillow's
   default 75 is what the Kaggle tutorial used) while the next batch runs on the generator;
4. the main thread appends each JPEG as ``<image_name>.jpg`` (flat, ZIP_STORED: JPEG does not
   compress) to a zip opened under a temporary name, renamed to ``out_zip`` only once complete.

At most two encoded batches wait at any time, so memory does not grow with N. An error or an
interrupt part-way leaves no ``out_zip`` (an existing one is left untouched). An unreadable
photo stops it with one error naming the photo's file and record, unless ``skip_corrupt``
leaves such photos out (checked once, before translating).
``python -m monet_keras translate`` runs this and then :func:`monet_keras.submit.zipcheck.validate_zip`.
"""

import collections
import dataclasses
import io
import logging
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import tensorflow as tf
from keras import ops
from PIL import Image

from monet_keras.accel import policy
from monet_keras.data import pipeline
from monet_keras.data.source import DomainFiles, find_images
from monet_keras.errors import MonetKerasError
from tfrecords_tools import schema
from tfrecords_tools.atomic import atomic_path

logger = logging.getLogger(__name__)

OUTPUT_SIZE = 256
DEFAULT_QUALITY = 95
DEFAULT_BATCH_SIZE = 32
_PENDING_BATCHES = 2  # encoded batches allowed to wait for the zip writer


@dataclasses.dataclass
class SubmissionReport:
    """What :func:`write_submission` wrote."""

    path: str
    count: int  # images in the zip
    seconds: float
    generator_size: int  # the generator's input size S
    batch_size: int
    quality: int
    zip_bytes: int
    precision: str  # the generator's compute dtype

    @property
    def images_per_second(self):
        return self.count / self.seconds if self.seconds > 0 else float("inf")

    def summary(self):
        return (f"wrote {self.path}: {self.count} JPEG images {OUTPUT_SIZE}x{OUTPUT_SIZE} "
                f"(quality {self.quality}, generator input {self.generator_size} px, {self.precision}), "
                f"{self.zip_bytes / 1e6:.1f} MB in {self.seconds:.1f} s "
                f"({self.images_per_second:.1f} images/s)")


def load_generator(generator):
    """A ``keras.Model`` given one, or loaded (without compiling) from a ``.keras`` path."""
    if isinstance(generator, keras.Model):
        return generator
    path = os.fspath(generator)
    if not os.path.isfile(path):
        raise MonetKerasError(f"generator file not found: {path}")
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # Keras raises many types for a bad file; the user needs one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MonetKerasError(f"cannot load generator {path}: {first}") from None


def generator_input_size(model, image_size=None):
    """The side S the generator takes: its fixed input size, else ``image_size``, else 256."""
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[-1] != 3 or shape[1] != shape[2]:
        raise MonetKerasError(f"generator {model.name} takes input shape {shape}, not (batch, S, S, 3)")
    fixed = shape[1]
    if fixed is not None and image_size is not None and image_size != fixed:
        raise MonetKerasError(f"bad parameter image_size={image_size}: "
                              f"generator {model.name} takes {fixed} px")
    return int(fixed or image_size or OUTPUT_SIZE)


def count_photos(files: DomainFiles):
    """How many photos ``files`` hold without reading them: JPEG files, or the counts in Kaggle
    shard names (``photo00-352.tfrec``); None when a shard name carries no count."""
    if files.kind == "jpeg":
        return len(files.paths)
    total = 0
    for path in files.paths:
        match = schema.SHARD_PATTERN.match(os.path.basename(path))
        if match is None:
            return None
        total += int(match["count"])
    return total


def encode_jpeg(pixels, quality=DEFAULT_QUALITY):
    """JPEG bytes of one (H, W, 3) uint8 image, encoded by Pillow at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _encode_batch(names, pixels, quality):
    return [(name, encode_jpeg(image, quality)) for name, image in zip(names, pixels)]


def computing_in(model, precision):
    """``model``, or for ``precision="bfloat16"`` a copy with the same weights whose layers compute
    in bfloat16 (Keras's ``mixed_bfloat16``: float32 weights, cast per layer). A model Keras cannot
    clone (subclassed) stays float32, with a logged warning."""
    if precision == "float32":
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
    except (ValueError, TypeError) as error:
        logger.warning("generator %s runs in float32: it cannot be cloned to bfloat16 (%s)",
                       model.name, error)
        return model
    copy.set_weights(model.get_weights())
    return copy


def translate_function(model, input_size, precision="float32"):
    """A compiled function: float (B, S, S, 3) photos in [-1, 1] -> uint8 (B, 256, 256, 3) paintings,
    returned as a numpy array, computed in ``precision`` ("float32" or "bfloat16"). TensorFlow
    traces it with ``tf.function``; JAX jits the generator's stateless call (the weights are
    arguments, not constants baked into the program)."""
    model = computing_in(model, precision)
    if keras.backend.backend() == "jax":
        return _jax_translate_function(model, input_size)

    @tf.function(input_signature=[tf.TensorSpec((None, input_size, input_size, 3), tf.float32)])
    def translate(photos):
        return _to_pixels(model(photos, training=False), input_size)
    return lambda photos: translate(photos).numpy()


def _jax_translate_function(model, input_size):
    import jax

    @jax.jit
    def translate(trainable, non_trainable, photos):
        fake, _ = model.stateless_call(trainable, non_trainable, photos, training=False)
        return _to_pixels(fake, input_size)

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    return lambda photos: np.asarray(translate(trainable, non_trainable, np.asarray(photos)))


def _to_pixels(fake, input_size):
    """Generator outputs in [-1, 1] -> uint8 256x256 images (bilinear, antialiased resize if needed)."""
    fake = ops.cast(fake, "float32")
    if input_size != OUTPUT_SIZE:
        fake = ops.image.resize(fake, (OUTPUT_SIZE, OUTPUT_SIZE), interpolation="bilinear", antialias=True)
    return ops.cast(ops.clip(ops.round((fake + 1.0) * 127.5), 0.0, 255.0), "uint8")


def _entry_name(raw_name, seen, where):
    name = raw_name.decode("utf-8") if isinstance(raw_name, bytes) else str(raw_name)
    if not name or "/" in name or "\\" in name:
        raise MonetKerasError(f"photo name {name!r} in {where} cannot be a flat zip entry name")
    entry = name + ".jpg"
    if entry in seen:
        raise MonetKerasError(f"duplicate photo name {name!r} in {where}: "
                              "every entry of images.zip must be unique")
    seen.add(entry)
    return entry


def _zip_info(entry, when):
    info = zipfile.ZipInfo(entry, date_time=when)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _user_error(error, files, batch_size):
    """A one-line :class:`MonetKerasError` for a TensorFlow error the user can act on, else None."""
    if isinstance(error, tf.errors.ResourceExhaustedError):
        return MonetKerasError(f"out of memory with batch_size={batch_size}; try a smaller batch size")
    if isinstance(error, (tf.errors.InvalidArgumentError, tf.errors.DataLossError, tf.errors.NotFoundError)):
        return pipeline.read_error(files, error)
    return None


def write_submission(generator, photos, out_zip, batch_size=DEFAULT_BATCH_SIZE, quality=DEFAULT_QUALITY,
                     image_size=None, progress=True, skip_corrupt=False,
                     precision="auto") -> SubmissionReport:
    """Translate every photo at ``photos`` with ``generator`` into a flat zip of 256x256 JPEGs.

    ``generator``: a ``keras.Model`` or a ``.keras`` path. ``photos``: anything
    :func:`monet_keras.data.source.find_images` accepts (Kaggle-layout root, folder of JPEGs or
    .tfrec files, one .tfrec, or DomainFiles, which may be checked already). ``image_size`` is only
    needed for a generator without a fixed input size. ``progress``: show a ``keras.utils.Progbar``.
    ``skip_corrupt``: check every photo first and leave out the unreadable or odd ones (a logged
    warning); else an unreadable photo stops it with an error naming it. ``precision``: "auto"
    (:func:`monet_keras.accel.policy.inference_precision`), "float32" or "bfloat16".
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MonetKerasError(f"bad parameter batch_size={batch_size!r}: expected a positive integer")
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise MonetKerasError(f"bad parameter quality={quality!r}: expected 1..100")
    precision = policy.inference_precision(precision)
    out_zip = os.fspath(out_zip)
    if os.path.isdir(out_zip):
        raise MonetKerasError(f"output {out_zip} is a folder; give a file name such as images.zip")
    files = find_images(photos, "photo")
    if skip_corrupt:
        files = files.checked(skip_corrupt=True)
    model = load_generator(generator)
    size = generator_input_size(model, image_size)
    translate = translate_function(model, size, precision)
    batches = pipeline.load_images(files, size, with_names=True).batch(batch_size).prefetch(2)
    bar = keras.utils.Progbar(count_photos(files), unit_name="image") if progress else None

    start = time.time()
    when = time.localtime(start)[:6]
    seen = set()
    written = 0
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive, \
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="jpeg") as encoder:
        pending = collections.deque()

        def write_oldest():
            nonlocal written
            encoded = pending.popleft().result()
            for entry, jpeg in encoded:
                archive.writestr(_zip_info(entry, when), jpeg)
            written += len(encoded)
            if bar is not None:
                bar.update(written)

        try:
            for names, images in batches:
                entries = [_entry_name(n, seen, files.where) for n in names.numpy()]
                pixels = translate(images)
                pending.append(encoder.submit(_encode_batch, entries, pixels, quality))
                while len(pending) > _PENDING_BATCHES:
                    write_oldest()
            while pending:
                write_oldest()
            if written == 0:
                raise MonetKerasError(f"no photos in {files.where}")
        except BaseException as error:
            for future in pending:
                future.cancel()
            user_error = _user_error(error, files, batch_size)
            if user_error is None:
                raise
            raise user_error from None
    if bar is not None and bar.target != written:
        bar.update(written, finalize=True)
    seconds = time.time() - start
    return SubmissionReport(out_zip, written, seconds, size, batch_size, quality, os.path.getsize(out_zip),
                            precision)
