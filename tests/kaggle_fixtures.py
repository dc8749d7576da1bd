"""Tiny Kaggle-layout folders for tests, with images whose content identifies them."""

import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from tfrecords_tools import schema


def jpeg_bytes(array, quality=95):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def coded_image(domain, index, size):
    """A flat image whose red channel is 4*index (so a decoded image names its source)."""
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = 4 * index
    image[..., 1] = 200 if domain == "monet" else 50
    image[..., 2] = 128
    return image


def decoded_index(image):
    """Inverse of coded_image for an image in [-1, 1]."""
    red = (float(np.mean(image[..., 0])) + 1.0) * 127.5
    return int(round(red / 4))


def write_kaggle_folder(root, n_monet=6, n_photo=10, size=32, kind="tfrecord", image_fn=coded_image,
                        shards=1):
    """Write ``monet_*`` and ``photo_*`` in the Kaggle layout; returns ``root``."""
    for domain, count in (("monet", n_monet), ("photo", n_photo)):
        records = [(f"{domain}{i:04d}", jpeg_bytes(image_fn(domain, i, size))) for i in range(count)]
        if kind == "tfrecord":
            folder = os.path.join(root, schema.tfrec_dir(domain))
            os.makedirs(folder, exist_ok=True)
            for shard in range(shards):
                part = records[shard::shards]
                shard_path = os.path.join(folder, schema.shard_name(domain, shard, len(part)))
                with tf.io.TFRecordWriter(shard_path) as w:
                    for name, data in part:
                        w.write(schema.encode_example(name, data, domain))
        else:
            folder = os.path.join(root, schema.jpg_dir(domain))
            os.makedirs(folder, exist_ok=True)
            for name, data in records:
                with open(os.path.join(folder, name + ".jpg"), "wb") as f:
                    f.write(data)
    return root
