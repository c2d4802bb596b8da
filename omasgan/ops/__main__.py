"""``python -m omasgan.ops``: the same report as ``omasgan doctor``."""

import sys

from omasgan.doctor import main

sys.exit(main())
