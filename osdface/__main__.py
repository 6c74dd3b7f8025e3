"""``python -m osdface``: the ``osdface`` command, for environments whose scripts folder is not on
PATH (and ``accelerate launch -m osdface ...``)."""

import sys

from osdface.cli import main

if __name__ == "__main__":
    sys.exit(main())
