"""``python -m affectlab ...``: see :mod:`affectlab.cli`."""

import sys

from affectlab.cli import main

sys.exit(main())
