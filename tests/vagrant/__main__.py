"""`python -m tests.vagrant`: the same as `make vagrant-test`."""

import sys

from tests.vagrant.run import main

sys.exit(main())
