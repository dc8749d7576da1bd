"""What the kit says while it works: the ``monet_keras`` and ``tfrecords_tools`` loggers on the console.

Library code logs through ``logging.getLogger(__name__)``: progress at INFO, things the user
should know at WARNING. The command lines (:func:`tfrecords_tools.errors.run_command`) and the
notebook call :func:`log_to_console`, which prints INFO as the bare message and WARNING and
above as ``warning: message``, on whatever ``sys.stdout`` is at that moment (a notebook's cell
output, pytest's capture). Used as a library without it, Python's defaults apply: warnings on
stderr, progress silent.
"""

import logging
import sys

KIT_LOGGERS = ("monet_keras", "tfrecords_tools")


class _Format(logging.Formatter):
    def format(self, record):
        message = super().format(record)
        return message if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {message}"


class _Stdout(logging.StreamHandler):
    """A handler on the current ``sys.stdout``, looked up for every message."""

    def __init__(self):
        super().__init__()
        self.setFormatter(_Format("%(message)s"))

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def log_to_console(level=logging.INFO):
    """Print the kit's log messages of ``level`` and above on stdout (once, however often it is called)."""
    for name in KIT_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not any(isinstance(handler, _Stdout) for handler in logger.handlers):
            logger.addHandler(_Stdout())
