"""``python -m tongyeok_client.cli``."""

import sys

from . import main

sys.exit(main())
