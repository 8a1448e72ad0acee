"""``python -m oscgan``: same as the ``oscgan`` command."""

import sys

from oscgan.cli import main

sys.exit(main())
