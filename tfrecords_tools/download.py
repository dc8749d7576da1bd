"""The competition data from Kaggle: downloaded with the kaggle CLI, extracted safely, counted.

:func:`download` runs ``kaggle competitions download -c COMPETITION -p TMP`` (credentials found
as :func:`tfrecords_tools.kaggle_cli.find_credentials` does; transient Kaggle failures retried) and
hands the zip to :func:`extract`. :func:`extract` refuses an archive with any member that would
land outside the output folder (``..`` in its path, an absolute path, a drive letter, a
backslash, a symbolic link) before writing anything, unpacks into a temporary folder next to
the output folder, checks the result with :func:`verify` and only then renames it into place:
the output folder appears complete and verified, or not at all.
"""

import logging
import os
import re
import shutil
import stat
import tempfile
import zipfile

from tfrecords_tools import schema
from tfrecords_tools.errors import UserError
from tfrecords_tools.outdir import check_writable_dir, new_directory

logger = logging.getLogger(__name__)

_DRIVE = re.compile(r"^[A-Za-z]:")


def unsafe_member(info):
    """Why the zip member ``info`` must not be extracted (a short phrase), or None if it is safe."""
    name = info.filename
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    if "\\" in name:
        return "a backslash in its path"
    if name.startswith("/"):
        return "an absolute path"
    if _DRIVE.match(name):
        return "a drive letter"
    if ".." in name.split("/"):
        return "'..' in its path"
    if "\0" in name:
        return "a NUL byte in its name"
    return None


def _safe_extract(zip_path, archive, target):
    """Extract every member of ``archive`` under ``target`` after checking them all."""
    members = archive.infolist()
    root = os.path.realpath(target)
    for info in members:
        why = unsafe_member(info)
        if why is None:
            real = os.path.realpath(os.path.join(target, info.filename))
            why = None if os.path.commonpath([real, root]) == root else "a path outside the folder"
        if why is not None:
            raise UserError(f"{zip_path}: member {info.filename!r} would land outside the output folder "
                                  f"({why}); refused, nothing extracted")
    for info in members:
        path = os.path.join(target, info.filename)
        if info.is_dir():
            os.makedirs(path, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with archive.open(info) as source, open(path, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def verify(root, expected=None, size=schema.KAGGLE_SIZE, shown_as=None):
    """Check a Kaggle-layout folder; return ``{(domain, kind): count}`` or raise UserError.

    Every image is decoded (:func:`tfrecords_tools.scan.scan` with ``size``; any problem is an
    error), each domain must be present, and each of its folders present (``{domain}_tfrec``
    records, ``{domain}_jpg`` files) must hold exactly ``expected[domain]`` images (default
    :data:`~tfrecords_tools.schema.KAGGLE_COUNTS`: 300 Monet paintings, 7,038 photos).
    ``shown_as`` replaces ``root`` in messages (a temporary folder is reported as the folder it will become).
    """
    from tfrecords_tools.scan import problems_message, scan

    expected = dict(schema.KAGGLE_COUNTS if expected is None else expected)
    shown_as = shown_as or root
    report = scan(root, expected_size=size)
    if report.problems:
        first = report.problems[0].replace(os.fspath(root), os.fspath(shown_as), 1)
        raise UserError(problems_message([first] + report.problems[1:],
                                               f"python -m tfrecords_tools inspect {shown_as} lists them"))
    totals = report.totals()
    for domain, want in expected.items():
        found = {kind: count for (d, kind), count in totals.items() if d == domain}
        if not found:
            raise UserError(f"{shown_as}: no {domain} images ({schema.tfrec_dir(domain)}/ or "
                                  f"{schema.jpg_dir(domain)}/ expected)")
        for kind, count in sorted(found.items()):
            folder = schema.tfrec_dir(domain) if kind == "tfrec" else schema.jpg_dir(domain)
            if count != want:
                raise UserError(f"{os.path.join(shown_as, folder)}: {count} {domain} images, expected {want} "
                                      f"(incomplete or wrong download)")
    return totals


def extract(zip_path, out_dir, force=False, expected=None, size=schema.KAGGLE_SIZE):
    """Unpack the data zip ``zip_path`` into ``out_dir`` and :func:`verify` it; return its counts.

    Refuses (UserError, one line naming the member) an archive with any member that would
    land outside ``out_dir``, before anything is written; a corrupt or truncated zip, or data
    that fails :func:`verify`, also leaves ``out_dir`` as it was. ``out_dir`` must be absent or
    empty unless ``force`` (then it is replaced only once the new data is complete).
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    try:
        with zipfile.ZipFile(zip_path) as archive, new_directory(out_dir, force) as tmp:
            _safe_extract(zip_path, archive, tmp)
            return verify(tmp, expected, size, shown_as=out_dir)
    except zipfile.BadZipFile as e:
        raise UserError(f"{zip_path}: not a readable zip archive ({e}); download it again") from None


def download(out_dir, competition=schema.COMPETITION, force=False, expected=None, size=schema.KAGGLE_SIZE,
             attempts=3, retry_delay=5.0):
    """Download ``competition``'s data with the kaggle CLI into ``out_dir`` (see :func:`extract`).

    The zip is fetched into a temporary folder next to ``out_dir`` and deleted afterwards.
    Returns the counts of :func:`verify`. Raises UserError (no credentials, bad archive,
    wrong counts) or :class:`tfrecords_tools.kaggle_cli.KaggleCliFailed` (the CLI failed).
    """
    from tfrecords_tools.kaggle_cli import find_credentials, run_kaggle

    out_dir = os.path.abspath(os.fspath(out_dir))
    check_writable_dir(out_dir, force)
    credentials = find_credentials()
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.download.", dir=parent)
    try:
        args = ["competitions", "download", "-c", competition, "-p", tmp]
        run_kaggle(args, credentials, attempts=attempts, retry_delay=retry_delay)
        zips = sorted(name for name in os.listdir(tmp) if name.endswith(".zip"))
        if len(zips) != 1:
            raise UserError(f"kaggle competitions download -c {competition} left {len(zips)} zip files, "
                                  f"expected 1")
        logger.info(f"extracting {zips[0]} into {out_dir}")
        return extract(os.path.join(tmp, zips[0]), out_dir, force, expected, size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
