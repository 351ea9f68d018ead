"""`python -m clipper.cli`: the same as the `clipper` console script (how `clipper up` starts
workers)."""

import sys

from clipper.cli import console

sys.exit(console())
