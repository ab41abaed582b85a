"""The documentation: the CLI reference is rendered from the parser (every verb), every page is in
the site's navigation, and the README stays short and links only to pages that exist."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

from tests.conftest import PROJECT

DOCS = PROJECT / "docs"


def hook():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_renders_every_verb_with_its_options() -> None:
    from bench.__main__ import build_parser

    reference = hook()
    text = reference.render()
    (verbs,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    assert verbs.choices, "the parser has no verbs"
    for name, parser in verbs.choices.items():
        assert f"## `python -m bench {name}` {{#{name}}}" in text, name
        for action in parser._actions:
            for option in action.option_strings:
                assert option in text, (name, option)
    assert "../shared" not in text, "a --help text names a local data folder users do not have"
    page = (DOCS / "reference" / "cli.md").read_text()
    assert reference.MARKER in page
    assert reference.on_page_markdown(page, None, None, None) == page.replace(reference.MARKER, text)
    assert reference.on_page_markdown("no marker", None, None, None) == "no marker"


def test_every_page_is_in_the_navigation() -> None:
    config = (PROJECT / "mkdocs.yml").read_text()
    listed = set(re.findall(r":\s*([\w./-]+\.md)\s*$", config, re.M))
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md") if "hooks" not in path.parts}
    assert pages - listed == set(), "pages missing from mkdocs.yml's nav"
    assert listed - pages == set(), "nav entries without a page"


def test_the_readme_is_short_and_links_to_pages_that_exist() -> None:
    readme = (PROJECT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert 'pip install -e ".[dev]"' in readme and "python -m pytest" in readme  # what CI runs
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert links and all((PROJECT / link).is_file() for link in links), [link for link in links if not (PROJECT / link).is_file()]
    assert "../shared" not in readme
    for page in DOCS.rglob("*.md"):
        assert "../shared" not in page.read_text(), page  # users have no such folder
