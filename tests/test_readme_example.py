"""The README's example of the array API runs as printed: its code, executed, prints exactly the
output the README shows under it."""

from __future__ import annotations

import contextlib
import io
import re

from tests.conftest import PROJECT


def _blocks() -> tuple[str, str]:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### The statistics on your own arrays"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"prints\n\n```\n(.*?)```", section, re.S)
    assert code and shown, "the README's array API section lost its code or its output"
    return code.group(1), shown.group(1)


def test_the_readme_array_example_prints_what_the_readme_shows():
    code, shown = _blocks()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    assert printed.getvalue() == shown
