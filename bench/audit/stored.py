"""Audit outcomes on disk: one JSON per dataset identity under the home's
reports/results/audit/, written atomically, read back by the report without the files."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.audit.measure import Association, AuditOutcome, AuditSettings, ValueLink

FOLDER = "audit"
SCHEMA = 1


def path(results_dir: Path, dataset: str) -> Path:
    """Where the audit of a dataset (by its key: name, attribute, folder) is kept."""
    return results_dir / FOLDER / f"{dataset}.json"


def as_json(outcome: AuditOutcome) -> dict[str, Any]:
    return {"schema": SCHEMA, **json.loads(json.dumps(dataclasses.asdict(outcome)))}


def from_json(document: dict[str, Any]) -> AuditOutcome:
    """The outcome a stored document holds; ValueError when it is not an audit of this schema."""
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise ValueError(f"not an audit of schema {SCHEMA}")
    try:
        properties = tuple(
            Association(**{**item, "values": tuple(ValueLink(link["value"], link["images"], tuple(map(tuple, link["classes"])))
                                                   for link in item["values"])})
            for item in document["properties"])
        fields = {name: document[name] for name in (field.name for field in dataclasses.fields(AuditOutcome))}
        return AuditOutcome(**{**fields, "settings": AuditSettings(**document["settings"]), "properties": properties,
                               "unreadable_examples": tuple(map(tuple, document["unreadable_examples"]))})
    except (KeyError, TypeError) as error:
        raise ValueError(f"an audit with a missing or malformed field ({error})") from None


def write(outcome: AuditOutcome, results_dir: Path) -> Path:
    """Write the outcome's JSON atomically: readers see the old file or the whole new one."""
    target = path(results_dir, outcome.dataset)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(as_json(outcome), out, indent=2, ensure_ascii=False)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def read_all(results_dir: Path) -> tuple[list[AuditOutcome], list[tuple[Path, str]]]:
    """Every stored audit, by dataset key, and the files that could not be read as one (with why)."""
    found: list[AuditOutcome] = []
    damaged: list[tuple[Path, str]] = []
    for file in sorted((results_dir / FOLDER).glob("*.json")):
        try:
            found.append(from_json(json.loads(file.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as error:
            damaged.append((file, str(error)))
    return found, damaged
