"""``python -m trainer.tagmap``: the same as ``python -m trainer tagmap``."""

import sys

from trainer.tagmap import main

sys.exit(main())
