"""``python -m omasgan``: the ``omasgan`` command; also what ``torchrun -m omasgan fit ...`` runs."""

import sys

from omasgan.cli import main

sys.exit(main())
