"""One batch at a time per runs folder: the lock file ``RUNS_DIR/.lock``.

:func:`runs_dir_lock` creates the file with ``O_CREAT | O_EXCL`` (so exactly one process can
create it) holding the owner's pid, host name and start time as JSON, and deletes it when the
block ends, normally or by an exception (Ctrl-C included). A second process finding the file
stops with a :class:`MonetKerasError` naming the owner. A lock whose owner is a pid on this
host that no longer runs (the batch was killed) is stale: it is taken over, with a message.
A lock from another host cannot be checked and is always respected. A crash between creating
the file and writing its contents leaves an unreadable lock, which is reported for the user
to delete.
"""

import contextlib
import json
import logging
import os
import socket
import time

from monet_keras.errors import MonetKerasError

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"


def pid_running(pid):
    """Whether a process ``pid`` exists on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(path):
    """The owner recorded in the lock file ``path``: ``{pid, host, started}``, or None if unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            owner = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int) or not owner.get("host"):
        return None
    return owner


def _create(path, owner):
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(owner, f)
        f.write("\n")


@contextlib.contextmanager
def runs_dir_lock(runs_dir):
    """Hold ``RUNS_DIR/.lock`` for the duration of the block (see the module docstring).

    Raises MonetKerasError at once if another live process holds it.
    """
    path = os.path.join(runs_dir, LOCK_FILE)
    host = socket.gethostname()
    owner = {"pid": os.getpid(), "host": host, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    while True:
        try:
            _create(path, owner)
            break
        except FileExistsError:
            holder = read_lock(path)
        if holder is None:
            raise MonetKerasError(f"{path}: unreadable lock file; "
                                  f"if no experiments run uses {runs_dir}, delete it")
        who = f"pid {holder['pid']} on {holder['host']}, started {holder.get('started', '?')}"
        if holder["host"] != host or pid_running(holder["pid"]):
            raise MonetKerasError(f"{runs_dir} is in use by another experiments run ({who}; lock {path}); "
                                  f"wait for it to finish")
        logger.info(f"{runs_dir}: taking over the lock of an experiments run that no longer runs ({who})")
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
    try:
        yield path
    finally:
        if read_lock(path) == owner:
            os.remove(path)
