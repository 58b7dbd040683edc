"""Entry point of `python -m tests.conformance` (what `make conformance` runs).
Delegates to tests.conformance.run.
"""

import sys

from tests.conformance.run import main

sys.exit(main())
