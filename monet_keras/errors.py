"""The one exception type users see.

Anything the user can fix (a missing folder, a corrupt image, a bad parameter) is raised as
:class:`MonetKerasError` with a one-line message naming the culprit. The CLIs print it as
``error: <message>`` and exit with status 2; every other exception is a bug in the kit.
"""


class MonetKerasError(Exception):
    """A problem with the user's input, with a one-line message that names the culprit."""


EXIT_USAGE = 2
