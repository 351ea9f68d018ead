"""`python -m clipper.cli`: the same as the `clipper` console script (how `clipper up` starts
workers)."""

import sys

from clipper.cli.commands import main

sys.exit(main())
