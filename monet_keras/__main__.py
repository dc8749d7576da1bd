"""``python -m monet_keras``: see :mod:`monet_keras.cli`."""

import sys

from monet_keras.cli import main

sys.exit(main())
