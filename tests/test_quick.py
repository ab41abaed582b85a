"""The quick subset's table (tests/conftest.py QUICK) names only tests that exist."""

from __future__ import annotations

import ast

from tests.conftest import ALL, PROJECT, QUICK


def test_every_test_the_quick_subset_names_exists() -> None:
    missing = []
    for file, names in QUICK.items():
        path = PROJECT / "tests" / file
        if not path.is_file():
            missing.append(file)
            continue
        if names is ALL:
            continue
        defined = {node.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}
        missing += [f"{file}::{name}" for name in sorted(names) if name.split("[")[0] not in defined]
    assert not missing, f"named in QUICK but not found: {missing}"
