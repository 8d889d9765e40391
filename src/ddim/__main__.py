"""``python -m ddim`` (and ``torchrun -m ddim``) runs the ``ddim`` command."""

import sys

from .cli import main

sys.exit(main())
