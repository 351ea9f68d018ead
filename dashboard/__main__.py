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


def command(options: list[str], max_upload_mb: float = 500) -> list[str]:
    """The streamlit command line that serves the dashboard; later options win."""
    # Streamlit's own limit (default 200 MB) set to Clipper's, so the browser is told at once.
    limit = ("--server.maxUploadSize", str(max(1, round(max_upload_mb))))
    return [sys.executable, "-m", "streamlit", "run", str(APP), *USER_OPTIONS, *limit, *options]


if __name__ == "__main__":
    from clipper.settings import Settings

    argv = command(sys.argv[1:], Settings.from_env().max_upload_mb)
    os.execv(argv[0], argv)  # streamlit takes over this process: signals reach it directly
