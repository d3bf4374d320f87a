"""`python -m fjordgate` is the `fjordgate` command (used by `fjordgate up` to start its children)."""

import sys

from .cli import main

sys.exit(main())
