"""`python -m bench.gate`: the performance gate (`gate.py`)."""

import sys

from .gate import main

sys.exit(main())
