"""The Kaggle ``gan-getting-started`` TFRecord schema, defined once for reader and writer.

Every record is a ``tf.train.Example`` with three bytes features:

- ``image_name``: the file stem, e.g. ``b"0a5075d42a"``;
- ``image``: the JPEG-encoded image (256x256 RGB in the competition data);
- ``target``: the domain label as bytes, ``b"monet"`` or ``b"photo"``.

File names follow ``{domain}NN-COUNT.tfrec`` inside ``{domain}_tfrec/`` (e.g.
``monet_tfrec/monet00-60.tfrec``); the JPEG copies live in ``{domain}_jpg/NAME.jpg``.
"""

import re

import tensorflow as tf

FEATURES = ("image_name", "image", "target")
DOMAINS = ("monet", "photo")
KAGGLE_SIZE = 256

FEATURE_SPEC = {name: tf.io.FixedLenFeature([], tf.string) for name in FEATURES}

SHARD_PATTERN = re.compile(r"^(?P<domain>[a-z]+)(?P<index>\d+)-(?P<count>\d+)\.tfrec$")


def tfrec_dir(domain):
    return f"{domain}_tfrec"


def jpg_dir(domain):
    return f"{domain}_jpg"


def shard_name(domain, index, count):
    """``monet00-60.tfrec``: the Kaggle naming, the record count after the dash."""
    return f"{domain}{index:02d}-{count}.tfrec"


def encode_example(image_name: str, jpeg_bytes: bytes, target: str) -> bytes:
    """One serialized ``tf.train.Example`` in the Kaggle schema."""
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
    return tf.io.parse_single_example(serialized, FEATURE_SPEC)


def missing_features(serialized: bytes):
    """Names of schema features absent from (or not bytes in) one serialized record.

    Raises ``ValueError`` if the bytes are not a ``tf.train.Example`` at all.
    """
    example = tf.train.Example()
    example.ParseFromString(serialized)
    feats = example.features.feature
    return [name for name in FEATURES
            if name not in feats or feats[name].WhichOneof("kind") != "bytes_list"
            or len(feats[name].bytes_list.value) != 1]
