"""`python -m dashboard [streamlit options]`: serve the dashboard with settings meant for users.

`clipper up` finds this module through the `clipper.apps` entry point (pyproject.toml) rather
than by a path, so the core never reaches up into the dashboard.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")
#: Users get no developer toolbar (deploy, rerun, clear cache) and no tracebacks: errors are
#: logged and the page shows a short message with an error id (dashboard/app.py).
USER_OPTIONS = ("--client.toolbarMode", "viewer", "--client.showErrorDetails", "none",
                "--server.headless", "true", "--browser.gatherUsageStats", "false")


def command(options: list[str]) -> list[str]:
    """The streamlit command line that serves the dashboard; later options win."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), *USER_OPTIONS, *options]


if __name__ == "__main__":
    argv = command(sys.argv[1:])
    os.execv(argv[0], argv)  # streamlit takes over this process: signals reach it directly
