"""``python -m tasks.data.accel``: every guard of the accelerator and its state (exit status 1
when one fails), for upgrading trafilatura or lxml."""

import sys

from tasks.data.accel.guards import main

sys.exit(main())
