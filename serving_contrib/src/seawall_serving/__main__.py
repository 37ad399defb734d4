"""``python -m seawall_serving``: the same as ``seawall-serve``."""

import sys

from seawall_serving._cli import main


sys.exit(main())
