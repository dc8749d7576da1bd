"""The one exception type users see.

Anything the user can fix (a missing folder, a corrupt image, a bad parameter) is raised as
:class:`UserError` with a one-line message naming the culprit. The CLIs print it as
``error: <message>`` and exit with status 2; every other exception is a bug in the kit.
"""

import sys

from tfrecords_tools.console import log_to_console


class UserError(Exception):
    """A problem with the user's input, with a one-line message that names the culprit."""


EXIT_USAGE = 2


def run_command(func, args, exit_codes=()):
    """Run a CLI command ``func(args)`` and return its exit status.

    The kit's log messages go to the console (:func:`tfrecords_tools.console.log_to_console`).
    :class:`UserError` (and any ``(exception type, status)`` of ``exit_codes``) becomes one
    ``error: ...`` line on stderr; Ctrl-C exits 130 with one line. Anything else is a bug and
    propagates with its traceback.
    """
    log_to_console()
    handled = ((UserError, EXIT_USAGE),) + tuple(exit_codes)
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except tuple(kind for kind, _ in handled) as e:
        print(f"error: {e}", file=sys.stderr)
        return next(status for kind, status in handled if isinstance(e, kind))
