"""``python -m tfrecords_tools``: see :mod:`tfrecords_tools.cli`."""

import sys

from tfrecords_tools.cli import main

sys.exit(main())
