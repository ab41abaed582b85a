"""The plan stage: which (record, processing) items each encoder's table still lacks.

Items are image-major (one record under all its processings in a row) so the prepare stage
decodes each file once; each item lists the encoders ("targets") that need it, so one decode
feeds every encoder of the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from bench import processing
from bench.data import ImageRecord
from bench.encoders.spec import EncoderSpec
from bench.extraction.fingerprint import fingerprint
from bench.extraction.prepare import View, view_of
from bench.store import Store, item_keys


@dataclass(frozen=True)
class Target:
    """One encoder and the table its rows go to."""

    spec: EncoderSpec
    fingerprint: dict[str, Any]
    view: View


@dataclass(frozen=True)
class WorkItem:
    record: ImageRecord
    op: processing.Processing
    targets: tuple[int, ...]  # positions in Plan.targets of the encoders that lack this item


@dataclass
class Plan:
    dataset: str  # the dataset's key in the store
    targets: tuple[Target, ...]
    items: list[WorkItem]
    stored: dict[str, int]  # encoder -> planned rows already in its table
    rejects: list[dict[str, str]] = field(default_factory=list)  # files the listing left out

    def missing(self, target: int) -> int:
        return sum(target in item.targets for item in self.items)

    def views(self, item: WorkItem) -> list[View]:
        """The distinct views the item's targets need, in target order."""
        return list(dict.fromkeys(self.targets[t].view for t in item.targets))


def make_plan(
    dataset: str,
    records: Sequence[ImageRecord],
    specs: Sequence[EncoderSpec],
    processings: Sequence[str],
    store: Store,
    *,
    seed: int = 0,
    precision: str = "fp32",
    rebuild: bool = False,
    rejects: Sequence[dict[str, str]] = (),
) -> Plan:
    """Refuse a table made differently before any work, then list what each encoder lacks."""
    ops = [processing.get(name) for name in processings]
    targets = tuple(Target(spec, fingerprint(spec, seed, precision), view_of(spec)) for spec in specs)
    wanted = item_keys(
        [r.image_id for r in records for _ in ops], [r.split for r in records for _ in ops],
        [op.name for _ in records for op in ops], [op.version for _ in records for op in ops],
    )
    lacking = []
    stored: dict[str, int] = {}
    for target in targets:
        if rebuild:
            store.drop(dataset, target.spec.name)
        if store.has_table(dataset, target.spec.name):
            store.check_fingerprint(dataset, target.spec.name, target.fingerprint)
            present = store.contains_keys(dataset, target.spec.name, wanted)
        else:
            present = np.zeros(len(wanted), dtype=bool)
        lacking.append(~present)
        stored[target.spec.name] = int(present.sum())
    need = np.stack(lacking, axis=1) if targets else np.zeros((len(wanted), 0), dtype=bool)
    items = []
    for position, (record, op) in enumerate((r, op) for r in records for op in ops):
        who = tuple(int(t) for t in np.flatnonzero(need[position]))
        if who:
            items.append(WorkItem(record, op, who))
    return Plan(dataset, targets, items, stored, list(rejects))
