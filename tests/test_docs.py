"""Docs kept true by tests: every setting is in the README's table, as the code has it.

Run ``python tests/test_docs.py`` to rewrite the README's table from the code.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from foundation import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BEGIN = (
    "<!-- settings-table: generated from foundation/settings.py; "
    "tests/test_docs.py keeps it true -->"
)
END = "<!-- /settings-table -->"


def _default(value: object) -> str:
    if value is None or value == "":
        return "(unset)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Path):
        return str(value).replace(str(Path.home()), "~")
    return str(value)


def settings_table() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `QUIVER_{name.upper()}` | `{_default(field.default)}` | {description} |")
    return "\n".join(rows)


def _section(text: str) -> str:
    match = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert match, "README.md lost its settings-table markers"
    return match.group(1)


def test_every_setting_is_documented_in_the_readme() -> None:
    assert _section(README.read_text()) == settings_table(), (
        "README's settings table is out of date: run `python tests/test_docs.py`"
    )


def test_every_setting_has_a_description() -> None:
    missing = [n for n, f in Settings.model_fields.items() if not f.description]
    assert not missing


def test_readme_starts_with_the_two_commands() -> None:
    head = README.read_text()[:1500]
    assert "make run" in head and "make test" in head


if __name__ == "__main__":
    text = README.read_text()
    new = text.replace(_section(text), settings_table())
    README.write_text(new)
    sys.exit(0)
