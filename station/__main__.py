"""``python -m station``: the same as ``cardsvc-station``."""

import sys

from station.cli import main

sys.exit(main(prog="python -m station"))
