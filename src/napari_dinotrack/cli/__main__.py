"""``python -m napari_dinotrack.cli``."""

import sys

from . import main

sys.exit(main())
