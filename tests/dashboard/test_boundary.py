"""The dashboard as users see it: no developer toolbar, no tracebacks, an error id instead."""

from __future__ import annotations

import logging

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.__main__ import command


def _failing_page() -> None:
    from dashboard.boundary import run_safely

    def page() -> None:
        raise RuntimeError("secret internal detail")

    run_safely(page)


def test_an_unhandled_error_shows_an_id_not_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="dashboard")
    at = AppTest.from_function(_failing_page).run()
    assert not at.exception
    [error] = at.error
    assert "error id" in error.value and "secret internal detail" not in error.value
    error_id = error.value.split("error id ")[1][:8]
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info and "secret internal detail" in str(record.exc_info[1])


def test_the_served_dashboard_hides_developer_options() -> None:
    argv = command(["--server.port", "8599"])
    assert argv[argv.index("--client.toolbarMode") + 1] == "viewer"
    assert argv[argv.index("--client.showErrorDetails") + 1] == "none"
    assert argv[-2:] == ["--server.port", "8599"]
