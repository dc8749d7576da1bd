"""Write files so that a crash never leaves a half-written file under the final name."""

import contextlib
import errno
import os
import tempfile

from tfrecords_tools.errors import UserError

# Failures to write that the user fixes (free space, permissions), not bugs of the kit.
_CANNOT_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    ``suffix`` keeps the extension some writers insist on (Keras wants ``.keras``).
    On any exception the temporary file is removed and ``path`` is untouched; a full disk or a
    folder that cannot be written becomes a :class:`UserError` naming ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    with _write_errors_named(path):
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix + ".part",
                                   dir=directory)
    os.close(fd)
    if suffix:
        # Some writers refuse names that do not end in their extension.
        os.remove(tmp)
        tmp = tmp[: -len(".part")]
    try:
        with _write_errors_named(path):
            yield tmp
            # mkstemp makes the file owner-only; give it the permissions a plain open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def _write_errors_named(path):
    """Turn a failure to write that the user fixes into a :class:`UserError` naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.errno not in _CANNOT_WRITE:
            raise
        hint = " (free some disk space and run again)" if e.errno == errno.ENOSPC else ""
        raise UserError(f"cannot write {path}: {e.strerror or e}{hint}") from None


def write_text(path, text):
    """Atomically replace ``path`` with ``text``."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
