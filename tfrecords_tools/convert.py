"""Converting between a folder of JPEGs and Kaggle-schema TFRecord files, all or nothing.

Both directions check every input first and raise :class:`UserError` naming the first bad
file (and record) before anything is written; output folders appear only when complete.
"""

import os

from tfrecords_tools import schema
from tfrecords_tools.errors import UserError
from tfrecords_tools.images import check_jpeg
from tfrecords_tools.outdir import check_writable_dir, new_directory
from tfrecords_tools.records import iter_records, write_shards
from tfrecords_tools.scan import Problem, problems_message


def read_jpeg_folder(src_dir, expected_size=None):
    """``[(stem, jpeg_bytes)]`` for every file of ``src_dir``, sorted by file name.

    Every entry must be a ``.jpg``/``.jpeg`` file holding an RGB JPEG (of ``expected_size``
    square pixels unless ``None``) with a stem no other file has; otherwise
    :class:`UserError` names the first bad file and counts the others.
    """
    src_dir = os.fspath(src_dir)
    if not os.path.isdir(src_dir):
        raise UserError(f"{src_dir}: no such folder")
    problems, records, stems = [], [], set()
    for entry in sorted(os.listdir(src_dir)):
        path = os.path.join(src_dir, entry)
        stem, suffix = os.path.splitext(entry)
        if not os.path.isfile(path) or suffix.lower() not in schema.JPEG_SUFFIXES:
            problems.append(Problem(path, None, "not a .jpg file"))
            continue
        if stem in stems:
            problems.append(Problem(path, None, f"a second image named {stem!r}"))
            continue
        stems.add(stem)
        with open(path, "rb") as f:
            data = f.read()
        problems += [Problem(path, None, what) for what in check_jpeg(data, expected_size)[1]]
        records.append((stem, data))
    if problems:
        hint = f"python -m tfrecords_tools inspect --size 0 {src_dir} lists them"
        raise UserError(problems_message(problems, hint))
    if not records:
        raise UserError(f"{src_dir}: no .jpg files")
    return records


def from_jpg(src_dir, out_dir, domain, shards=None, expected_size=None, force=False):
    """Write the JPEGs of ``src_dir`` as ``out_dir/{domain}_tfrec/{domain}NN-COUNT.tfrec``.

    ``image_name`` is each file's stem, ``target`` is ``domain``, the JPEG bytes are copied
    unchanged. ``shards`` defaults to Kaggle's file count for the domain (at most one per
    image). Returns the written paths. Nothing is written unless every file is good (see
    :func:`read_jpeg_folder`); an existing non-empty ``{domain}_tfrec`` is refused unless
    ``force``.
    """
    if domain not in schema.DOMAINS:
        raise UserError(f"bad domain {domain!r}: use one of {', '.join(schema.DOMAINS)}")
    target = os.path.join(os.fspath(out_dir), schema.tfrec_dir(domain))
    check_writable_dir(target, force, inputs=[src_dir])
    records = read_jpeg_folder(src_dir, expected_size)
    shards = min(schema.KAGGLE_SHARDS[domain], len(records)) if shards is None else shards
    if not 1 <= shards <= len(records):
        raise UserError(f"bad number of shards {shards}: need 1 to {len(records)} (an image per shard)")
    with new_directory(target, force) as tmp:
        names = [os.path.basename(p) for p in write_shards(records, tmp, domain, shards)]
    return [os.path.join(target, name) for name in names]


def tfrecord_files(paths):
    """The ``.tfrec`` files among ``paths``: files as given, folders expanded to their
    ``.tfrec`` files in name order. Raises :class:`UserError` for a missing path, a file
    that is not ``.tfrec`` or a folder without ``.tfrec`` files."""
    files = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            found = sorted(e for e in os.listdir(path) if e.endswith(schema.TFREC_SUFFIX))
            if not found:
                raise UserError(f"{path}: no .tfrec files in this folder")
            files += [os.path.join(path, e) for e in found]
        elif not os.path.exists(path):
            raise UserError(f"{path}: no such file or folder")
        elif not path.endswith(schema.TFREC_SUFFIX):
            raise UserError(f"{path}: not a .tfrec file")
        else:
            files.append(path)
    return files


def _bad_file_name(name):
    return not name or name in (".", "..") or any(c in name for c in "/\\\0")


def to_jpg(paths, out_dir, force=False):
    """Extract every record's JPEG bytes, unchanged, to ``out_dir/NAME.jpg``; return the count.

    ``paths`` are ``.tfrec`` files or folders of them. Every record must read, follow the schema,
    hold a decodable RGB JPEG (any size) and have an ``image_name`` usable as a file name and
    not used by another record; otherwise :class:`UserError` names the first bad file and
    record and nothing is written. ``out_dir`` must be absent or empty unless ``force``.
    """
    files = tfrecord_files(paths)
    check_writable_dir(out_dir, force, inputs=files)
    problems, images = [], {}
    for path in files:
        for index, record, problem in iter_records(path):
            if problem is not None:
                problems.append(Problem(path, index, problem))
                continue
            name = record["image_name"]
            found = check_jpeg(record["image"])[1]
            if _bad_file_name(name):
                found.append(f"image_name {name!r} cannot be a file name")
            elif name in images:
                found.append(f"image_name {name!r} appears twice")
            problems += [Problem(path, index, what) for what in found]
            if not found:
                images[name] = record["image"]
    if problems:
        hint = "python -m tfrecords_tools inspect --size 0 lists them"
        raise UserError(problems_message(problems, hint))
    if not images:
        raise UserError(f"no records in {', '.join(map(os.fspath, paths))}")
    with new_directory(out_dir, force) as tmp:
        for name, data in images.items():
            with open(os.path.join(tmp, name + ".jpg"), "wb") as f:
                f.write(data)
    return len(images)
