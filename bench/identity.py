"""A result cell's identity: every input that made its numbers, recorded in the cell, and what
changed between a stored cell and the run asking for it now.

Besides its task, dataset key, encoder and condition (its path), a cell records:
- the dataset: its identity (name, attribute, folder, listing digest) and a digest of what every
  image's pixels are made from (file size and modification time, crop, capture op);
- the extraction fingerprint its table was made with (encoder spec, weights checksum,
  preprocessing, processing seed, precision, package versions);
- the version of every processing op it read;
- the id of the table it read, which changes whenever the table is rebuilt.
A stored cell is reused only when all of these are what this run would use.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Mapping

SHOWN = 40  # characters of a changed value shown in a reason


@dataclass(frozen=True)
class CellInputs:
    dataset: dict[str, Any]  # the dataset's identity and its `contents` digest
    fingerprint: dict[str, Any]  # the extraction fingerprint of the table the cell reads
    processings: dict[str, int]  # processing op -> version, for every op the cell reads
    table: str | None  # the id of the table the cell reads (None: no table yet)

    def as_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), sort_keys=True))  # tuples -> lists, as stored


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _shown(value: Any) -> str:
    text = "absent" if value is None else str(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


def differences(before: Mapping[str, Any], now: Mapping[str, Any], label: str = "") -> list[str]:
    """Each nested field that differs, as `name old → new`."""
    old, new = _flat(before), _flat(now)
    return [f"{label}{key} {_shown(old.get(key))} → {_shown(new.get(key))}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def changes(recorded: Any, current: CellInputs) -> list[str]:
    """What differs between a stored cell's inputs and this run's, in words; empty when nothing does."""
    if not isinstance(recorded, Mapping):
        return ["the cell records no inputs (made by an older bench)"]
    now = current.as_json()
    reasons: list[str] = []
    dataset, wanted = recorded.get("dataset") or {}, now["dataset"]
    if dataset.get("listing") != wanted.get("listing"):
        reasons.append(f"the dataset's listing changed ({dataset.get('images', '?')} images then, {wanted.get('images')} now)")
    elif dataset.get("contents") != wanted.get("contents"):
        reasons.append("image files changed on disk since (size or modification time)")
    reasons += differences({k: v for k, v in dataset.items() if k not in ("listing", "contents", "images")},
                            {k: v for k, v in wanted.items() if k not in ("listing", "contents", "images")}, "dataset ")
    # the fingerprint's own copy of the dataset identity is reported above
    reasons += differences({k: v for k, v in (recorded.get("fingerprint") or {}).items() if k != "dataset"},
                            {k: v for k, v in now["fingerprint"].items() if k != "dataset"})
    for name, version in sorted(now["processings"].items()):
        before = (recorded.get("processings") or {}).get(name)
        if before != version:
            reasons.append(f"processing {name} version {_shown(before)} → {version}")
    if not reasons and recorded.get("table") != now["table"]:
        reasons.append("its table was rebuilt since" if now["table"] else "its table is gone")
    return reasons
