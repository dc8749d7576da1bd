"""Image sources and feature extractors for the evaluation metrics (FID, KID, MiFID).

Images are read one at a time from a zip (e.g. ``images.zip``, read without extracting), a
``tf.data.Dataset``, a numpy array, or data files as :mod:`monet_keras.data.source` finds them (a
Kaggle-layout root, a folder of JPEGs or .tfrec files, one .tfrec file; TFRecords preferred),
and turned into feature vectors batch by batch: one batch of images is in memory at a time,
never all of them. ``skip_corrupt`` leaves out the data files' unreadable or odd images, as
training does; without it the first unreadable one stops the evaluation, named.

Pixel convention: every image becomes float32 RGB in [-1, 1], i.e. ``x / 127.5 - 1`` for 8-bit
pixels (the convention of ``keras.applications.inception_v3.preprocess_input`` and of the rest
of this kit). Float inputs (arrays, datasets) must already be in [-1, 1]; uint8 inputs are
scaled. Each image is then resized to ``extractor.image_size`` squared (299 for InceptionV3) by
:func:`resize_images`.

Extractors (:class:`FeatureExtractor`):

- :func:`inception_extractor`: Keras InceptionV3, ``include_top=False``, ``pooling="avg"``:
  2048-d pool features. Weights: ``"imagenet"`` (Keras's download, cached in ``~/.keras``), a
  local weights file, ``$MONET_KERAS_INCEPTION_WEIGHTS``, or ``None`` (random init, for tests).
- :func:`graph_extractor`: Kaggle's own extractor, the 2015 TensorFlow Inception graph
  (``classify_image_graph_def.pb``, tensor ``pool_3``), fed as Kaggle's MiFID code feeds it.
- :func:`standin_extractor`: a small convolutional network with fixed random weights drawn from
  a seed, for machines without the pretrained weights. Its numbers are NOT comparable to
  Kaggle's and are labelled so wherever they are printed or saved.
- :func:`custom_extractor`: any callable ``images -> (n, d) features``.

:func:`extractor_for_weights` picks between the first two by the weights file: a ``.pb`` GraphDef
selects :func:`graph_extractor`, anything else :func:`inception_extractor`.
"""

import dataclasses
import hashlib
import io
import logging
import os
import zipfile
from collections.abc import Callable

import numpy as np
from PIL import Image, UnidentifiedImageError

from monet_keras.errors import MonetKerasError

logger = logging.getLogger(__name__)

INCEPTION_SIZE = 299
INCEPTION_DIM = 2048
WEIGHTS_ENV = "MONET_KERAS_INCEPTION_WEIGHTS"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
RESIZE_METHOD = "bilinear (tf.image.resize, half-pixel centers, no antialias) on [-1, 1] floats"

# Keras's own ImageNet InceptionV3 "notop" weights (keras/src/applications/inception_v3.py).
KERAS_NOTOP_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_NOTOP_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                   + KERAS_NOTOP_FILE)
KERAS_NOTOP_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"

# Kaggle's extractor: the 2015 Inception graph as Kaggle's MiFID demo and TTUR's fid.py read it.
GRAPH_NAME = "inception-2015-graph (Kaggle's extractor)"
GRAPH_FILE = "classify_image_graph_def.pb"
GRAPH_INPUT = "ExpandDims:0"
GRAPH_OUTPUT = "pool_3:0"
GRAPH_PREFIXES = ("", "FID_Inception_Net/", "Pretrained_Net/")  # as saved, or re-exported after import
KAGGLE_IMAGE_SIZE = 256
GRAPH_RESIZE = (f"none for {KAGGLE_IMAGE_SIZE} px images (others: bilinear to {KAGGLE_IMAGE_SIZE} first); "
                "the graph's own ResizeBilinear to 299 on [0, 255] floats")

STANDIN_NAME = "standin-randomconv-v1"
NOT_COMPARABLE = "NOT comparable to Kaggle"


class WeightsUnavailable(MonetKerasError):
    """The pretrained InceptionV3 weights can be neither found nor downloaded."""


# --- image sources ------------------------------------------------------------------------


class ImageSource:
    """Images in a fixed order, read one at a time as float32 (h, w, 3) arrays in [-1, 1].

    ``count`` is the number of images, or None where it is unknown before reading (datasets).
    Sources with ``random_access`` read one image by index with ``load(i)``.
    """

    description = ""
    count: int | None = None
    random_access = False

    def __iter__(self):
        raise NotImplementedError

    def load(self, index):
        raise NotImplementedError

    def pick(self, indices):
        """``{index: image}`` for a few indices: read directly, or by one pass over the source."""
        wanted = set(int(i) for i in indices)
        if self.random_access or not wanted:
            return {index: self.load(index) for index in wanted}
        found = {}
        for index, image in enumerate(self):
            if index in wanted:
                found[index] = image
                if len(found) == len(wanted):
                    break
        return found


def _decode(data, where):
    """Decode encoded image bytes to float32 RGB in [-1, 1]; one-line error naming ``where``."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    except UnidentifiedImageError:
        raise MonetKerasError(f"cannot read image {where}: not an image format PIL recognises") from None
    except (OSError, ValueError) as e:
        raise MonetKerasError(f"cannot read image {where}: {e}") from None
    return pixels / 127.5 - 1.0


def _is_image_name(name):
    base = os.path.basename(name)
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _no_images_message(where, others):
    kinds = ", ".join(IMAGE_EXTENSIONS)
    if not others:
        return f"no images ({kinds}) in {where}: it is empty"
    return (f"no images ({kinds}) in {where}: it holds {len(others)} other file(s), "
            f"e.g. {sorted(others)[0]}")


class DomainImages(ImageSource):
    """The images of data files (:class:`~monet_keras.data.source.DomainFiles`: JPEG files or
    TFRecords), in file order, less the records their check marked to skip.

    Decoded with PIL like every source here, so the same JPEG gives the same pixels from a record
    as from a file.
    """

    def __init__(self, files):
        self.files = files
        self.description = (f"{files.domain} {'JPEGs' if files.kind == 'jpeg' else 'TFRecords'} "
                            f"in {files.where}")
        if files.kind == "jpeg":
            self.count = len(set(files.paths) - (files.skip or frozenset()))

    def __iter__(self):
        from monet_keras.data.pipeline import encoded_images
        from monet_keras.data.source import SKIP_HINT

        for where, _name, data in encoded_images(self.files):
            try:
                yield _decode(data, where)
            except MonetKerasError as e:
                raise MonetKerasError(f"{e}; {SKIP_HINT}") from None


class ZipImages(ImageSource):
    """The image members (.jpg, .jpeg, .png) of a zip file, by sorted name, read without extracting.

    Folders, hidden files, ``__MACOSX/`` entries and other members are ignored.
    """

    random_access = True

    def __init__(self, path):
        self.path = os.fspath(path)
        self.description = f"zip {self.path}"
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [m.filename for m in archive.infolist()
                           if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
        except (OSError, zipfile.BadZipFile) as e:
            raise MonetKerasError(f"cannot open zip {self.path}: {e}") from None
        self.names = sorted(m for m in members if _is_image_name(m))
        if not self.names:
            raise MonetKerasError(_no_images_message(self.path, members))
        self.count = len(self.names)

    def _read(self, archive, name):
        try:
            data = archive.read(name)
        except (OSError, zipfile.BadZipFile) as e:
            raise MonetKerasError(f"cannot read {name} in {self.path}: {e}") from None
        return _decode(data, f"{self.path}:{name}")

    def load(self, index):
        with zipfile.ZipFile(self.path) as archive:
            return self._read(archive, self.names[index])

    def __iter__(self):
        with zipfile.ZipFile(self.path) as archive:
            for name in self.names:
                yield self._read(archive, name)


def _scaled(images, where):
    """uint8 [0, 255] -> [-1, 1]; floats must already be in [-1, 1]."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    if not np.issubdtype(images.dtype, np.floating):
        raise MonetKerasError(f"{where}: expected uint8 in [0, 255] or floats in [-1, 1], got {images.dtype}")
    low, high = float(np.min(images)), float(np.max(images))
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1.001 or high > 1.001:
        raise MonetKerasError(f"{where}: float images must lie in [-1, 1], found [{low:g}, {high:g}] "
                              "(pass uint8 for [0, 255] pixels)")
    return images.astype(np.float32)


def _check_rgb(shape, where, ranks=(4,)):
    """Rank in ``ranks`` and 3 channels (a channel count of None, from a dataset spec, passes)."""
    if len(shape) not in ranks or shape[-1] not in (3, None):
        want = " or ".join(("(h, w, 3)", "(n, h, w, 3)")[r - 3] for r in ranks)
        raise MonetKerasError(f"{where}: expected RGB images shaped {want}, got {tuple(shape)}")


class ArrayImages(ImageSource):
    """An (n, h, w, 3) array: uint8 in [0, 255] or floats in [-1, 1]."""

    random_access = True

    def __init__(self, array):
        self.array = array
        self.description = f"array {tuple(array.shape)}"
        _check_rgb(array.shape, self.description)
        if len(array) == 0:
            raise MonetKerasError(f"no images in {self.description}")
        self.count = len(array)

    def load(self, index):
        return _scaled(self.array[index], self.description)

    def __iter__(self):
        for index in range(self.count):
            yield self.load(index)


class DatasetImages(ImageSource):
    """A ``tf.data.Dataset`` of image tensors, one image (h, w, 3) or a batch (n, h, w, 3) per
    element: uint8 in [0, 255] or floats in [-1, 1]. Tuples or dicts must be mapped to the image
    first, e.g. ``ds.map(lambda image, label: image)``."""

    def __init__(self, dataset, description="tf.data dataset"):
        import tensorflow as tf

        self.dataset = dataset
        self.description = description
        spec = dataset.element_spec
        if not isinstance(spec, tf.TensorSpec):
            raise MonetKerasError(f"{description}: elements must be image tensors, not {type(spec).__name__} "
                                  "(map them to the image first, e.g. ds.map(lambda image, label: image))")
        rank = spec.shape.rank
        if rank is not None:
            _check_rgb(spec.shape, description, ranks=(3, 4))
        cardinality = int(dataset.cardinality())
        self.count = cardinality if rank == 3 and cardinality >= 0 else None

    def __iter__(self):
        import tensorflow as tf

        iterator = iter(self.dataset)
        while True:
            try:
                element = next(iterator)
            except StopIteration:
                return
            except tf.errors.OpError as e:
                reason = e.message.splitlines()[0]
                raise MonetKerasError(f"cannot read {self.description}: {reason}") from None
            images = element.numpy()
            _check_rgb(images.shape, self.description, ranks=(3, 4))
            images = _scaled(images, self.description)
            yield from (images if images.ndim == 4 else images[None])


def open_images(source, skip_corrupt=False) -> ImageSource:
    """An :class:`ImageSource` for a ``.zip`` file, an array, a dataset, a source, or data files.

    Data files: a path :func:`monet_keras.data.source.find_images` accepts (a Kaggle-layout
    root, whose Monet paintings are read, a folder of JPEGs or .tfrec files, one .tfrec file) or
    DomainFiles. With ``skip_corrupt`` they are checked first (once) and their unreadable or odd
    images left out (a logged warning); a zip, array or dataset is read as it is.
    """
    if isinstance(source, ImageSource):
        return source
    if isinstance(source, np.ndarray):
        return ArrayImages(source)
    if isinstance(source, (str, os.PathLike)) and os.path.isfile(source) and zipfile.is_zipfile(source):
        return ZipImages(source)
    import tensorflow as tf  # only now: this module's numbers and defaults need no TensorFlow

    from monet_keras.data.source import DomainFiles, find_images

    if isinstance(source, (str, os.PathLike, DomainFiles)):
        files = find_images(source, "monet")  # paintings, real or generated
        return DomainImages(files.checked(skip_corrupt=True) if skip_corrupt else files)

    if isinstance(source, tf.data.Dataset):
        return DatasetImages(source)
    raise MonetKerasError(f"cannot read images from a {type(source).__name__}; "
                          "pass a folder, a zip file, a numpy array or a tf.data.Dataset")


# --- resizing and extraction --------------------------------------------------------------


def resize_images(images, size):
    """Resize float32 (h, w, 3) images in [-1, 1] to one (n, size, size, 3) float32 batch.

    The method is ``tf.image.resize(method="bilinear", antialias=False)`` (half-pixel centers),
    applied to the [-1, 1] floats; images already ``size`` x ``size`` are left untouched. The
    competition's 256 px images are upsampled to InceptionV3's 299, where antialiasing plays no part.
    """
    import tensorflow as tf

    out = []
    for image in images:
        if image.shape[:2] != (size, size):
            image = tf.image.resize(image, (size, size), method="bilinear", antialias=False).numpy()
        out.append(image)
    return np.stack(out).astype(np.float32, copy=False)


@dataclasses.dataclass(frozen=True)
class FeatureExtractor:
    """A named map from (n, image_size, image_size, 3) float32 batches in [-1, 1] to (n, d) features.

    ``weights`` identifies the weights (a file's sha256, a seed); ``comparable_to_kaggle`` is True
    for Keras's ImageNet InceptionV3 weights at 299 px and for Kaggle's own extractor
    (``kaggle_extractor``, :func:`graph_extractor`). ``resize`` says how images reach the network.
    ``model`` is the underlying Keras model where there is one.
    """

    name: str
    fn: Callable
    image_size: int
    weights: str
    comparable_to_kaggle: bool = False
    model: object | None = None
    kaggle_extractor: bool = False
    resize: str = RESIZE_METHOD

    def __call__(self, images):
        return np.asarray(self.fn(images))

    @property
    def label(self):
        """One line naming the extractor, its weights and whether its numbers compare to Kaggle's."""
        if self.kaggle_extractor:
            verdict = "computed with Kaggle's extractor (the 2015 Inception graph, pool_3)"
        elif self.comparable_to_kaggle:
            verdict = "comparable to Kaggle (same kind of features)"
        else:
            verdict = NOT_COMPARABLE
        return f"{self.name} [{self.weights}] at {self.image_size} px: {verdict}"

    def describe(self):
        """The JSON-ready identity of this extractor."""
        return {"extractor": self.name, "weights": self.weights, "image_size": self.image_size,
                "resize": self.resize, "comparable_to_kaggle": self.comparable_to_kaggle,
                "kaggle_extractor": self.kaggle_extractor}


def _file_digests(path):
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest(), sha256.hexdigest()


def resolve_inception_weights(weights="auto"):
    """The local weights file (or None for random init) that ``weights`` names.

    ``"auto"``: ``$MONET_KERAS_INCEPTION_WEIGHTS`` if set, else ``"imagenet"``. ``"imagenet"``:
    Keras's notop file, downloaded once into ``~/.keras/models`` (needs internet the first time).
    A path must be an existing file. Raises :class:`WeightsUnavailable` with one line otherwise.
    """
    origin = "weights"
    if weights == "auto":
        env = os.environ.get(WEIGHTS_ENV)
        weights, origin = (env, f"${WEIGHTS_ENV}") if env else ("imagenet", origin)
    if weights is None:
        return None
    weights = os.fspath(weights)
    if weights == "imagenet":
        import keras

        try:
            return keras.utils.get_file(KERAS_NOTOP_FILE, KERAS_NOTOP_URL, cache_subdir="models",
                                        file_hash=KERAS_NOTOP_MD5)
        except Exception as e:  # Keras raises a bare Exception for every download failure
            # Keras words it "URL fetch failure on URL: code -- reason"; keep the reason
            reason = " ".join(str(e).split(" -- ")[-1].split())
            raise WeightsUnavailable(
                f"pretrained InceptionV3 weights unavailable: cannot download {KERAS_NOTOP_FILE} ({reason}); "
                f"pass --weights FILE or set {WEIGHTS_ENV}=FILE, or use --stand-in "
                f"(numbers {NOT_COMPARABLE})") from None
    if not os.path.isfile(weights):
        raise WeightsUnavailable(f"InceptionV3 weights file not found: {weights} (from {origin})")
    return weights


def inception_extractor(weights="auto", image_size=INCEPTION_SIZE) -> FeatureExtractor:
    """Keras InceptionV3 (``include_top=False, pooling="avg"``): 2048-d pool features.

    ``weights``: ``"auto"``, ``"imagenet"``, a weights file path, or None (random initialisation;
    for tests). See :func:`resolve_inception_weights`. Inputs are resized to ``image_size``
    (InceptionV3 needs at least 75). Comparable to Kaggle only with Keras's ImageNet weights
    (checked by the file's md5) at 299 px; Kaggle's evaluator runs its own Inception network,
    whose weights need not match Keras's, so even then local figures are estimates.
    """
    path = resolve_inception_weights(weights)
    import keras

    if image_size < 75:
        raise MonetKerasError(f"bad image_size={image_size}: InceptionV3 needs at least 75 px")
    if path is None:
        identity, official = "random initialisation (weights=None)", False
    else:
        md5, sha256 = _file_digests(path)
        identity, official = f"sha256:{sha256} ({os.path.basename(path)})", md5 == KERAS_NOTOP_MD5
    try:
        model = keras.applications.InceptionV3(include_top=False, pooling="avg", weights=path,
                                               input_shape=(image_size, image_size, 3))
    except (OSError, ValueError, KeyError) as e:
        reason = " ".join(str(e).split())
        raise MonetKerasError(f"cannot load InceptionV3 weights from {path}: {reason}") from None
    return FeatureExtractor(name="inception_v3", fn=model.predict_on_batch, image_size=image_size,
                            weights=identity, comparable_to_kaggle=official and image_size == INCEPTION_SIZE,
                            model=model)


def graph_extractor(path, image_size=KAGGLE_IMAGE_SIZE) -> FeatureExtractor:
    """Kaggle's extractor: the 2015 TensorFlow Inception graph's 2048-d ``pool_3`` features.

    ``path``: ``classify_image_graph_def.pb`` (a frozen GraphDef, from the inception-2015-12-05
    archive; on Kaggle attach a public dataset that holds it). The graph is imported with
    ``tf.compat.v1.import_graph_def`` inside ``tf.compat.v1.wrap_function``, its
    ``ExpandDims:0`` tensor replaced by a float32 batch of any size, and ``pool_3:0``
    ([n, 1, 1, 2048]) read out. Tensor names may carry the prefix ``FID_Inception_Net/`` or
    ``Pretrained_Net/`` (a graph re-exported after TTUR's or Kaggle's import).

    How the images are fed, and why (from Kaggle's MiFID demo kernel, whose code follows TTUR's
    fid.py, written from memory of that code, not re-read here): Kaggle reads each image with PIL
    as uint8 RGB and feeds the array, values in [0, 255], unscaled, at its own size (the
    competition checks that submitted images are 256x256 and does not resize them in production)
    into ``Pretrained_Net/ExpandDims:0``, the tensor after the graph's ``DecodeJpeg`` and
    ``Cast``. The graph itself then resizes to 299x299 with its ``ResizeBilinear`` op and
    normalises with ``(x - 128) / 128``. So here: images (float32 in [-1, 1], as every extractor
    receives them) are mapped back to [0, 255] floats with ``(x + 1) * 127.5`` (exact up to float
    rounding for decoded JPEGs; not rounded to integers, so unquantised generator output is fed as
    is); ``image_size`` defaults to 256, so 256 px images reach the graph untouched and the only
    resize is the graph's own; images of other sizes are first resized to 256 by
    :func:`resize_images`, which Kaggle would reject instead. Uncertain: whether Kaggle's
    production scorer batches images (the demo feeds batches of 50 through the same tensor after
    relaxing its static batch dimension of 1; batching does not change the per-image features).
    """
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MonetKerasError(f"cannot read Inception graph {path}: {e.strerror or e}") from None
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(data)
    except DecodeError:
        raise MonetKerasError(f"cannot read Inception graph {path}: not a TensorFlow GraphDef") from None
    nodes = {node.name for node in graph_def.node}
    prefix = next((p for p in GRAPH_PREFIXES
                   if {p + GRAPH_INPUT[:-2], p + GRAPH_OUTPUT[:-2]} <= nodes), None)
    if prefix is None:
        raise MonetKerasError(f"{path} is not Kaggle's Inception graph: it has no {GRAPH_INPUT} and "
                              f"{GRAPH_OUTPUT} tensors (expected {GRAPH_FILE})")

    def imported(images):
        (pool,) = tf.compat.v1.import_graph_def(graph_def, input_map={prefix + GRAPH_INPUT: images},
                                                return_elements=[prefix + GRAPH_OUTPUT], name="")
        return pool

    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    try:
        wrapped = tf.compat.v1.wrap_function(imported, [spec])
    except (ValueError, tf.errors.OpError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise MonetKerasError(f"cannot import Inception graph {path}: {reason}") from None
    # only the ops that pool_3 needs: the graph's JPEG-decoding head stays out
    pool_3 = wrapped.prune(wrapped.inputs[0], wrapped.outputs[0])

    def features(images):
        pool = pool_3(tf.constant((images + 1.0) * 127.5, tf.float32))
        return tf.reshape(pool, (len(images), -1)).numpy()

    digest = _file_digests(path)[1]
    return FeatureExtractor(name=GRAPH_NAME, fn=features, image_size=image_size,
                            weights=f"sha256:{digest} ({os.path.basename(path)})",
                            comparable_to_kaggle=True, kaggle_extractor=True, resize=GRAPH_RESIZE)


def extractor_for_weights(weights="auto", image_size=None) -> FeatureExtractor:
    """Kaggle's extractor for a ``.pb`` GraphDef, else Keras's InceptionV3 for ``weights``.

    ``weights`` as :func:`resolve_inception_weights` takes it (so ``$MONET_KERAS_INCEPTION_WEIGHTS``
    may name a .pb too). ``image_size``: None for each extractor's default (256 for the graph,
    299 for InceptionV3).
    """
    path = resolve_inception_weights(weights)
    if path is not None and path.lower().endswith(".pb"):
        return graph_extractor(path, image_size or KAGGLE_IMAGE_SIZE)
    return inception_extractor(path, image_size or INCEPTION_SIZE)


def _quadrant_means(maps):
    """(n, h, w, c) -> (n, 4c): the mean of each quadrant (rows and columns split by np.array_split)."""
    quadrants = [block.mean(axis=(1, 2)) for rows in np.array_split(maps, 2, axis=1)
                 for block in np.array_split(rows, 2, axis=2)]
    return np.concatenate(quadrants, axis=1)


def standin_extractor(seed=0, image_size=INCEPTION_SIZE) -> FeatureExtractor:
    """A small fixed random convolutional network: 2048-d features for machines without weights.

    Four 3x3 stride-2 tanh convolutions (32, 64, 128, 256 filters), a linear 1x1 convolution to
    512 channels, then the mean of each quadrant of the map: 4 x 512 = 2048 features. Kernels are
    drawn from ``numpy.random.default_rng(seed)`` as N(0, 1/fan_in), biases are zero, so the
    network is the same for a seed on every machine. Unlike an untrained network with ReLUs and
    global pooling (whose features all point the same way), distinct images get distinct
    directions: fresh images sit at a nearest-neighbour distance (1 - |cos|) of about 0.25 and
    near-copies under 0.001, which keeps the memorization distance meaningful. Its numbers are
    NOT comparable to Kaggle's.
    """
    import keras

    if image_size < 32:
        raise MonetKerasError(f"bad image_size={image_size}: the stand-in extractor needs at least 32 px")
    rng = np.random.default_rng(seed)
    inputs = keras.Input((image_size, image_size, 3))
    x = inputs
    for filters in (32, 64, 128, 256):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="tanh")(x)
    outputs = keras.layers.Conv2D(INCEPTION_DIM // 4, 1)(x)
    model = keras.Model(inputs, outputs, name=STANDIN_NAME.replace("-", "_"))
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel, bias = layer.get_weights()
            fan_in = np.prod(kernel.shape[:-1])
            kernel = rng.standard_normal(kernel.shape) / np.sqrt(fan_in)
            layer.set_weights([kernel.astype(np.float32), np.zeros_like(bias)])

    def features(images):
        return _quadrant_means(model.predict_on_batch(images))

    return FeatureExtractor(name=STANDIN_NAME, fn=features, image_size=image_size,
                            weights=f"fixed random, seed {seed}", comparable_to_kaggle=False, model=model)


def custom_extractor(fn, name="custom", image_size=INCEPTION_SIZE, weights="user-supplied"):
    """Wrap a callable ``(n, image_size, image_size, 3) float32 in [-1, 1] -> (n, d)`` as an extractor."""
    if not callable(fn):
        raise MonetKerasError(f"extractor {name!r} is not callable")
    return FeatureExtractor(name=name, fn=fn, image_size=int(image_size), weights=weights)


def as_extractor(extractor) -> FeatureExtractor:
    """A :class:`FeatureExtractor` as is; a bare callable wrapped by :func:`custom_extractor`."""
    if isinstance(extractor, FeatureExtractor):
        return extractor
    return custom_extractor(extractor)


def extract_features(source, extractor, batch_size=32, verbose=1) -> np.ndarray:
    """Features of every image of ``source``, in its order: an (n, d) float32 array.

    ``source``: anything :func:`open_images` accepts. Images are decoded, scaled to [-1, 1],
    resized by :func:`resize_images` and passed to ``extractor`` ``batch_size`` at a time; only
    one batch of images is in memory at once. ``verbose=1`` shows a ``keras.utils.Progbar``.
    """
    import keras

    images = open_images(source)
    extractor = as_extractor(extractor)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise MonetKerasError(f"bad batch_size={batch_size!r}: expected a positive integer")
    progress = keras.utils.Progbar(images.count, unit_name="image") if verbose else None
    chunks, batch, dim = [], [], None

    def flush():
        nonlocal dim
        features = extractor(resize_images(batch, extractor.image_size))
        same_dim = dim is None or (features.ndim == 2 and features.shape[1] == dim)
        if features.ndim != 2 or len(features) != len(batch) or not same_dim:
            raise MonetKerasError(f"extractor {extractor.name} returned shape {features.shape} for "
                                  f"{len(batch)} images; expected ({len(batch)}, d) with one d throughout")
        dim = features.shape[1]
        chunks.append(features.astype(np.float32, copy=False))
        if progress is not None:
            progress.add(len(batch))
        batch.clear()

    for image in images:
        batch.append(image)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if not chunks:
        raise MonetKerasError(f"no images in {images.description}")
    features = np.concatenate(chunks)
    if not np.isfinite(features).all():
        raise MonetKerasError(f"extractor {extractor.name} returned non-finite features "
                              f"for {images.description}")
    return features
