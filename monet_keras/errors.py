"""The one exception type users see, under the kit's name.

Anything the user can fix (a missing folder, a corrupt image, a bad parameter) is raised with a
one-line message naming the culprit. The CLIs print it as ``error: <message>`` and exit with
status 2; every other exception is a bug in the kit. The class lives in the lower layer,
:mod:`tfrecords_tools.errors`, so the data tools raise the same type without importing this
package.
"""

from tfrecords_tools.errors import EXIT_USAGE, UserError, run_command

MonetKerasError = UserError

__all__ = ["EXIT_USAGE", "MonetKerasError", "run_command"]
