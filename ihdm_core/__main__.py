"""``python -m ihdm_core <command>``: train, sample, evaluate, book, models (see ihdm_core.cli)."""

import sys

from ihdm_core.cli import main

sys.exit(main())
