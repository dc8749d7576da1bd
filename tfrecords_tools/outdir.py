"""Output folders that appear complete or not at all."""

import contextlib
import os
import shutil
import uuid

from tfrecords_tools.errors import UserError


def check_writable_dir(path, force=False, inputs=()):
    """Raise :class:`UserError` unless ``path`` is absent, an empty folder, or ``force``;
    and in any case if one of the ``inputs`` paths lies inside ``path`` (replacing it would
    delete the input)."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{path}: exists and is not a folder")
    if os.path.isdir(path) and os.listdir(path) and not force:
        raise UserError(f"{path}: folder exists and is not empty (use --force to replace it)")
    real = os.path.realpath(path)
    for source in map(os.fspath, inputs):
        if os.path.commonpath([real, os.path.realpath(source)]) == real:
            raise UserError(f"{path}: output folder would replace the input {source}")


@contextlib.contextmanager
def new_directory(path, force=False):
    """Yield a new temporary folder next to ``path``; it becomes ``path`` when the block succeeds.

    Refuses (:class:`UserError`) if ``path`` is a file, or a non-empty folder unless
    ``force``; with ``force`` the old folder is replaced only after the new one is complete.
    On any exception (Ctrl-C included) the temporary folder is deleted and ``path`` is left as
    it was, so an interrupted run never leaves a folder that looks complete.
    """
    path = os.path.abspath(os.fspath(path))
    check_writable_dir(path, force)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.part")
    os.mkdir(tmp)
    try:
        yield tmp
        if os.path.isdir(path) and os.listdir(path):
            old = tmp + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            if os.path.isdir(path):
                os.rmdir(path)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
