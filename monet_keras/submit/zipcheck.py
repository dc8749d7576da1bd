"""Check an ``images.zip`` against the competition's rules before it costs a daily submission.

Kaggle's ``gan-getting-started`` accepts one flat zip of 7,000 to 10,000 JPEG images, each
256x256 RGB. :func:`validate_zip` lists every way an archive breaks that rule:

- the file is missing or not a zip archive;
- the number of images is outside ``[min_count, max_count]``;
- an entry is a folder or sits inside one (the archive must be flat);
- a name does not end in ``.jpg``/``.jpeg``, or occurs more than once;
- an entry's bytes do not start with the JPEG marker ``FF D8 FF``, fail to decode completely
  with Pillow (truncated or corrupt data, CRC mismatch), or decode to anything but a
  256x256 image in mode ``RGB`` (grayscale ``L`` and ``CMYK`` JPEGs are rejected).

This module imports no TensorFlow, so ``kaggle_submit.py`` can check a zip quickly.
``python -m monet_keras validate-zip images.zip [--allow-small]`` prints every problem and
exits 1 when there is any.
"""

import collections
import os
import zipfile
from concurrent.futures import ThreadPoolExecutor

from monet_keras.errors import MonetKerasError
from tfrecords_tools import images

MIN_COUNT = 7000
MAX_COUNT = 10000
IMAGE_SIZE = 256
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_SUFFIXES = (".jpg", ".jpeg")
SMALL_MIN_COUNT = 1
_CHUNK = 64  # entries decoded per round: bounds memory to a few MB whatever the archive size


def check_jpeg(data: bytes, size=IMAGE_SIZE):
    """The problem with one entry's bytes as a short phrase, or None if it is a size x size RGB JPEG.

    Decoding is :func:`tfrecords_tools.images.check_jpeg`'s; this adds the byte-marker test and
    Kaggle's stricter rules (Pillow format ``JPEG`` only, exactly ``size`` x ``size``, mode RGB).
    """
    if not data.startswith(JPEG_MAGIC):
        if data.startswith(b"\x89PNG"):
            return "is a PNG, not a JPEG"
        return "is not a JPEG (no FF D8 FF marker)"
    info, problems = images.check_jpeg(data)
    if info is None:
        return f"does not decode: {problems[0]}"
    if info.format != "JPEG":
        return f"is not a JPEG (Pillow reads it as {info.format})"
    rule_problems = []
    if (info.width, info.height) != (size, size):
        rule_problems.append(f"is {info.width}x{info.height}, not {size}x{size}")
    if info.mode != "RGB":
        rule_problems.append(f"has mode {info.mode}, not RGB")
    return " and ".join(rule_problems) or None


def _read_entry(archive, info):
    """An entry's bytes, or a problem phrase when the archive cannot produce them."""
    try:
        return archive.read(info), None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as e:
        return None, f"cannot be read from the archive: {str(e).splitlines()[0]}"


def validate_zip(path, min_count=MIN_COUNT, max_count=MAX_COUNT, size=IMAGE_SIZE, workers=2):
    """Every problem that keeps ``path`` from being a valid submission, one string each; [] if valid.

    Entries are decoded ``_CHUNK`` at a time on ``workers`` threads (Pillow decodes off the GIL).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        return [f"{path}: no such file"]
    if not zipfile.is_zipfile(path):
        return [f"{path}: not a zip archive"]
    problems = []
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        return [f"{path}: not a readable zip archive ({e})"]
    with archive, ThreadPoolExecutor(max(1, workers)) as pool:
        infos = archive.infolist()
        files = [info for info in infos if not info.is_dir()]
        for info in infos:
            if info.is_dir():
                problems.append(f"{info.filename}: a folder entry (the archive must be flat)")
        for name, count in collections.Counter(info.filename for info in files).items():
            if count > 1:
                problems.append(f"{name}: duplicate name ({count} entries)")
        if not min_count <= len(files) <= max_count:
            problems.append(f"{path}: {len(files)} images; Kaggle needs {min_count:,} to {max_count:,}")
        for start in range(0, len(files), _CHUNK):
            chunk = files[start:start + _CHUNK]
            data = [_read_entry(archive, info) for info in chunk]
            checks = pool.map(lambda d: None if d[0] is None else check_jpeg(d[0], size), data)
            for info, (_, read_problem), check in zip(chunk, data, checks):
                name = info.filename
                if "/" in name or "\\" in name:
                    problems.append(f"{name}: inside a folder (the archive must be flat)")
                if not name.lower().endswith(JPEG_SUFFIXES):
                    problems.append(f"{name}: name does not end in .jpg")
                if read_problem or check:
                    problems.append(f"{name}: {read_problem or check}")
    return problems


def count_range(allow_small):
    """``(min_count, max_count)``: Kaggle's 7,000-10,000, or 1-10,000 for demo data."""
    return (SMALL_MIN_COUNT if allow_small else MIN_COUNT), MAX_COUNT


def require_valid_zip(path, min_count=MIN_COUNT, max_count=MAX_COUNT):
    """Raise :class:`MonetKerasError` (one line: the problem count and the first problem) unless valid."""
    problems = validate_zip(path, min_count, max_count)
    if problems:
        more = f" (and {len(problems) - 1} more; run `python -m monet_keras validate-zip {path}`)" \
            if len(problems) > 1 else ""
        raise MonetKerasError(f"{path} is not a valid submission: {problems[0]}{more}")


def report(path, problems, min_count, max_count):
    """Print the verdict for ``path``: ``ok: ...`` or one ``problem: ...`` line each. Returns the
    exit code."""
    if not problems:
        with zipfile.ZipFile(path) as archive:
            count = sum(1 for info in archive.infolist() if not info.is_dir())
        print(f"ok: {path}: {count} JPEG images, {IMAGE_SIZE}x{IMAGE_SIZE} RGB, flat, unique names "
                 f"(count allowed {min_count:,}-{max_count:,})")
        return 0
    for problem in problems:
        print(f"problem: {problem}")
    print(f"{path} is NOT a valid submission: {len(problems)} problem(s)")
    return 1


def note_allow_small(min_count, max_count):
    print(f"note: --allow-small: accepting {min_count:,}-{max_count:,} images for demo data; "
             f"Kaggle itself requires {MIN_COUNT:,}-{MAX_COUNT:,}")
