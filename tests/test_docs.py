"""The README documents every setting and keeps the two set-up commands first."""

import re
from pathlib import Path

from clipper.settings import SETTINGS, Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme_table():
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.M))
    names = {s.env for s in SETTINGS}
    assert names - documented == set(), "undocumented settings"
    assert documented - names == set(), "README documents settings that do not exist"


def test_every_setting_has_a_field_on_the_settings_object():
    fields = set(Settings.__dataclass_fields__)
    assert {s.attr for s in SETTINGS} <= fields


def test_readme_opens_with_exactly_two_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, flags=re.S).group(1)
    lines = [ln for ln in first_block.splitlines() if ln.strip()]
    assert lines == ["./scripts/setup.sh && .venv/bin/clipper up --demo", "./scripts/test.sh"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci
