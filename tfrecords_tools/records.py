"""Reading and writing TFRecord files in the Kaggle schema (see :mod:`tfrecords_tools.schema`).

Reading never raises for bad data: every record comes with either its decoded value or a
one-line problem, so callers decide whether to stop or skip. TensorFlow is imported inside the
functions that need it.
"""

import os
import re

from tfrecords_tools import schema
from tfrecords_tools.atomic import atomic_path


def tf_message(error):
    """The useful part of a TensorFlow op error: no ``{{function_node ...}}`` or ``[Op:...]``."""
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", error.message)
    text = re.sub(r"\s*\[Op:.*$", "", text, flags=re.S)
    return " ".join(text.split())


def iter_serialized(path):
    """Yield ``(index, serialized, problem)`` for each record of one TFRecord file.

    ``index`` counts records from 0. ``serialized`` is the record's bytes, or ``None`` when the
    file cannot be read at this point: then ``problem`` is a one-line reason (a truncated file,
    a corrupted length or checksum, an unreadable file), it is the last item, and every record
    from ``index`` on is lost, since TFRecord framing cannot resynchronise after such an error.
    """
    import tensorflow as tf

    iterator = iter(tf.data.TFRecordDataset(os.fspath(path)))
    index = 0
    while True:
        try:
            serialized = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as e:
            yield index, None, f"unreadable TFRecord data, this and any later records lost ({tf_message(e)})"
            return
        yield index, serialized.numpy(), None
        index += 1


def iter_records(path):
    """Yield ``(index, record, problem)`` for each record of one TFRecord file.

    Exactly one of ``record`` and ``problem`` is ``None``. ``record`` is
    ``{"image_name": str, "image": bytes (JPEG, not decoded), "target": str}``; ``problem`` is a
    one-line reason without the file name: the record is not a ``tf.train.Example``, a schema
    feature is missing or of the wrong kind, or the file is unreadable from here on (see
    :func:`iter_serialized`). The image bytes are not checked here; see
    :func:`tfrecords_tools.images.check_jpeg` and :mod:`tfrecords_tools.scan`.
    """
    for index, serialized, problem in iter_serialized(path):
        if problem is not None:
            yield index, None, problem
            continue
        try:
            yield index, schema.decode_record(serialized), None
        except ValueError as e:
            yield index, None, str(e)


def write_shards(records, directory, domain, n_shards):
    """Write ``records`` into ``n_shards`` files ``directory/{domain}NN-COUNT.tfrec``.

    ``records`` is a sequence of ``(image_name, jpeg_bytes)``; every record gets
    ``target = domain``. Records go to the shards in order, split by
    :func:`tfrecords_tools.schema.shard_sizes`, and COUNT in each name is the number of records
    in that file. Each file is written under a temporary name and renamed when complete.
    Returns the written paths in shard order. Raises ``ValueError`` if ``n_shards`` is not
    between 1 and ``len(records)``.
    """
    import tensorflow as tf

    sizes = schema.shard_sizes(len(records), n_shards)
    paths = []
    start = 0
    for index, size in enumerate(sizes):
        path = os.path.join(os.fspath(directory), schema.shard_name(domain, index, size))
        with atomic_path(path) as tmp:
            with tf.io.TFRecordWriter(tmp) as writer:
                for image_name, jpeg_bytes in records[start:start + size]:
                    writer.write(schema.encode_example(image_name, jpeg_bytes, domain))
        paths.append(path)
        start += size
    return paths
