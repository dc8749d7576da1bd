"""The Kaggle ``gan-getting-started`` TFRecord schema, defined once for reader and writer.

Every record is a ``tf.train.Example`` with three bytes features:

- ``image_name``: the file stem, e.g. ``b"0a5075d42a"``;
- ``image``: the JPEG-encoded image (256x256 RGB in the competition data);
- ``target``: the domain label as bytes, ``b"monet"`` or ``b"photo"``.

File names follow ``{domain}NN-COUNT.tfrec`` inside ``{domain}_tfrec/`` (e.g.
``monet_tfrec/monet00-60.tfrec``); the JPEG copies live in ``{domain}_jpg/NAME.jpg``.

TensorFlow is imported by the functions that read or write records, not by this module, so
the names and layout here (and checks of JPEG folders) need no TensorFlow.
"""

import re

from google.protobuf.message import DecodeError

FEATURES = ("image_name", "image", "target")
DOMAINS = ("monet", "photo")
COMPETITION = "gan-getting-started"  # the Kaggle competition whose data this is
KAGGLE_COUNTS = {"monet": 300, "photo": 7038}  # images per domain in the competition data
KAGGLE_SIZE = 256
KAGGLE_SHARDS = {"monet": 5, "photo": 20}  # files per domain in the competition data

SHARD_PATTERN = re.compile(r"^(?P<domain>[a-z]+)(?P<index>\d+)-(?P<count>\d+)\.tfrec$")
TFREC_SUFFIX = ".tfrec"
JPEG_SUFFIXES = (".jpg", ".jpeg")


def tfrec_dir(domain):
    return f"{domain}_tfrec"


def jpg_dir(domain):
    return f"{domain}_jpg"


def shard_name(domain, index, count):
    """``monet00-60.tfrec``: the Kaggle naming, the record count after the dash."""
    return f"{domain}{index:02d}-{count}.tfrec"


def shard_sizes(n_records: int, n_shards: int):
    """Records per shard when ``n_records`` are split into ``n_shards`` consecutive shards.

    The first ``n_records % n_shards`` shards hold one record more than the rest, so 7038
    photos in 20 shards give 18 shards of 352 and 2 of 351, and 300 paintings in 5 give 60 each.
    """
    if n_shards < 1 or n_shards > n_records:
        raise ValueError(f"cannot split {n_records} records into {n_shards} shards")
    base, extra = divmod(n_records, n_shards)
    return [base + 1 if i < extra else base for i in range(n_shards)]


def encode_example(image_name: str, jpeg_bytes: bytes, target: str) -> bytes:
    """One serialized ``tf.train.Example`` in the Kaggle schema."""
    import tensorflow as tf

    def feature(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    example = tf.train.Example(features=tf.train.Features(feature={
        "image_name": feature(image_name.encode("utf-8")),
        "image": feature(jpeg_bytes),
        "target": feature(target.encode("utf-8")),
    }))
    return example.SerializeToString()


def parse_example(serialized):
    """Graph-mode parse of one record into a dict of three scalar string tensors."""
    import tensorflow as tf

    spec = {name: tf.io.FixedLenFeature([], tf.string) for name in FEATURES}
    return tf.io.parse_single_example(serialized, spec)


def _parse_proto(serialized: bytes):
    import tensorflow as tf

    example = tf.train.Example()
    try:
        example.ParseFromString(serialized)
    except DecodeError as e:
        raise ValueError(f"not a tf.train.Example ({len(serialized)} bytes that do not parse)") from e
    return example


def _kind(feature):
    """``bytes``, ``int64``, ``float`` or ``empty``: which list one ``tf.train.Feature`` holds."""
    kind = feature.WhichOneof("kind")
    return kind[: -len("_list")] if kind else "empty"


def missing_features(serialized: bytes):
    """Names of schema features absent from (or not bytes in) one serialized record.

    Raises ``ValueError`` if the bytes are not a ``tf.train.Example`` at all.
    """
    feats = _parse_proto(serialized).features.feature
    return [name for name in FEATURES
            if name not in feats or feats[name].WhichOneof("kind") != "bytes_list"
            or len(feats[name].bytes_list.value) != 1]


def feature_kinds(serialized: bytes):
    """``{feature name: kind}`` of one serialized record, sorted by name; kind is one of
    ``bytes``, ``int64``, ``float`` or ``empty``.

    Raises ``ValueError`` if the bytes are not a ``tf.train.Example`` at all.
    """
    feats = _parse_proto(serialized).features.feature
    return {name: _kind(feats[name]) for name in sorted(feats)}


def decode_record(serialized: bytes):
    """One serialized record as ``{"image_name": str, "image": bytes, "target": str}``.

    Pure protobuf (no graph ops). Raises ``ValueError`` with a one-line reason if the bytes are
    not a ``tf.train.Example``, a schema feature is missing or not exactly one bytes value, or
    ``image_name``/``target`` are not UTF-8. Extra features are allowed and ignored.
    """
    feats = _parse_proto(serialized).features.feature
    wrong = []
    for name in FEATURES:
        if name not in feats:
            wrong.append(f"feature {name!r} is missing")
        elif _kind(feats[name]) != "bytes":
            wrong.append(f"feature {name!r} is {_kind(feats[name])}, expected bytes")
        elif len(feats[name].bytes_list.value) != 1:
            wrong.append(f"feature {name!r} holds {len(feats[name].bytes_list.value)} values, expected 1")
    if wrong:
        raise ValueError("; ".join(wrong))
    values = {name: feats[name].bytes_list.value[0] for name in FEATURES}
    for name in ("image_name", "target"):
        try:
            values[name] = values[name].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"feature {name!r} is not UTF-8 text") from e
    return values
