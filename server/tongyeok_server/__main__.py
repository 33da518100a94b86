"""``python -m tongyeok_server``."""

import sys

from tongyeok_server.main import main

sys.exit(main())
