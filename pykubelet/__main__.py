"""`python -m pykubelet`: the same as the `pykubelet` console command."""

import sys

from pykubelet.cli import main

sys.exit(main())
