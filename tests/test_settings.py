"""Settings from the environment: defaults, parsing and the refusal of bad values (pure)."""

from __future__ import annotations

import pytest

from clipper.errors import InvalidInput
from clipper.settings import Settings


def test_the_webhook_deadline_defaults_to_ten_seconds_and_takes_fractions():
    assert Settings.from_env({}).webhook_timeout == 10.0
    assert Settings.from_env({"CLIPPER_WEBHOOK_TIMEOUT": "2.5"}).webhook_timeout == 2.5


@pytest.mark.parametrize("bad", ["0", "-1", "soon", "nan"])
def test_a_webhook_deadline_that_is_not_a_positive_number_is_refused_by_name(bad):
    with pytest.raises(InvalidInput, match=f"CLIPPER_WEBHOOK_TIMEOUT={bad!r} is not valid"):
        Settings.from_env({"CLIPPER_WEBHOOK_TIMEOUT": bad})
