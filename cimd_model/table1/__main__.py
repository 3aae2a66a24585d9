"""``python -m cimd_model.table1``: the same as ``cimd-table1``."""

import sys

from .cli import main

sys.exit(main())
