"""The plan stage: which (record, processing) items each encoder's table still lacks.

Items are image-major (one record under all its processings in a row) so the prepare stage
decodes each file once; each item lists the encoders ("targets") that need it, so one decode
feeds every encoder of the run. Planning also refuses a table made differently or from a
folder that has changed since, and repairs a table that holds a key twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bench import processing
from bench.data import ImageRecord
from bench.encoders.spec import EncoderSpec
from bench.errors import DatasetChangedError, UsageError
from bench.extraction.fingerprint import fingerprint
from bench.extraction.prepare import InputShape, input_shape_of
from bench.store import Store, item_keys, merge_keys, table_name

if TYPE_CHECKING:
    from bench.data import ResolvedDataset

FRESH_TABLE_VERSION = 1  # the version of a table that was just created and holds no rows


@dataclass(frozen=True)
class Target:
    """One encoder and the table its rows go to."""

    spec: EncoderSpec
    fingerprint: dict[str, Any]
    shape: InputShape


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
    since: dict[str, int | None]  # encoder -> table version the plan saw (None: writes must merge on the key)
    rejects: list[dict[str, str]] = field(default_factory=list)  # files the listing left out
    notes: list[str] = field(default_factory=list)  # repairs and warnings to show the user

    def missing(self, target: int) -> int:
        return sum(target in item.targets for item in self.items)

    def working(self) -> list[int]:
        """The targets (positions) that lack at least one item."""
        return [t for t in range(len(self.targets)) if self.missing(t)]

    def input_shapes(self, item: WorkItem) -> list[InputShape]:
        """The distinct input shapes the item's targets need, in target order."""
        return list(dict.fromkeys(self.targets[t].shape for t in item.targets))


def check_splits(dataset: "ResolvedDataset", splits: Sequence[str]) -> list[str]:
    """Refuse a split the dataset does not have; return notes for requested splits with no images."""
    known = {"train", "val", "test"}
    unknown = [split for split in splits if split not in known]
    if unknown:
        raise UsageError(f"unknown split(s) {', '.join(unknown)}: splits are train, val and test")
    present = dataset.splits()
    empty = [split for split in splits if not present.get(split)]
    if len(empty) == len(splits):
        having = ", ".join(f"{split} ({count} images)" for split, count in sorted(present.items())) or "no images at all"
        raise UsageError(f"dataset {dataset.key} has no images in {', '.join(splits)}; it has {having}")
    return [f"dataset {dataset.key} has no images in split {split}" for split in empty]


def make_plan(
    dataset: "ResolvedDataset",
    specs: Sequence[EncoderSpec],
    processings: Sequence[str],
    store: Store,
    *,
    splits: Sequence[str] = ("train", "val"),
    precision: str = "fp32",
    rebuild: bool = False,
    dry: bool = False,
) -> Plan:
    """Refuse a table made differently before any work, then list what each encoder lacks.
    `dry`: change nothing (no table dropped for --rebuild, no duplicate repaired), only say what
    a run would do."""
    notes = check_splits(dataset, splits)
    records = [record for record in dataset.listing.records if record.split in splits]
    ops = [processing.get(name) for name in processings]
    targets = tuple(Target(spec, fingerprint(spec, precision, dataset.identity), input_shape_of(spec)) for spec in specs)
    columns = ([r.image_id for r in records for _ in ops], [r.split for r in records for _ in ops], [op.name for _ in records for op in ops])
    wanted = item_keys(*columns, [op.version for _ in records for op in ops], [r.stamp for r in records for _ in ops])
    wanted_merge = merge_keys(*columns)
    lacking, stored, since = [], {}, {}
    for target in targets:
        name = target.spec.name
        if rebuild and not dry:
            store.drop(dataset.key, name)
        if rebuild and dry and store.has_table(dataset.key, name):
            notes.append(f"--rebuild drops table {table_name(dataset.key, name)} ({store.count(dataset.key, name)} rows) and extracts it again")
        if (rebuild and dry) or not store.has_table(dataset.key, name):
            lacking.append(np.ones(len(wanted), dtype=bool))
            stored[name], since[name] = 0, FRESH_TABLE_VERSION
            continue
        _refuse_changed_folder(store, dataset, name, target.fingerprint)
        store.check_fingerprint(dataset.key, name, target.fingerprint, sharing=len(targets))
        state = store.key_state(dataset.key, name)
        if state.duplicates() and dry:
            notes.append(f"table {table_name(dataset.key, name)} holds {state.duplicates()} duplicate row(s); a run repairs them first")
        elif state.duplicates():
            removed = store.repair_duplicates(dataset.key, name)
            notes.append(f"repaired table {table_name(dataset.key, name)}: removed {removed} duplicate row(s)")
            state = store.key_state(dataset.key, name)
        present = state.contains(wanted)
        replaced = ~present & pc.is_in(wanted_merge, value_set=pc.unique(state.merge_keys)).to_numpy(zero_copy_only=False)
        lacking.append(~present)
        stored[name] = int(present.sum())
        since[name] = None if replaced.any() else state.version  # rows of an older op version or source stamp are replaced by merging
    need = np.stack(lacking, axis=1) if targets else np.zeros((len(wanted), 0), dtype=bool)
    items = []
    for position, (record, op) in enumerate((r, op) for r in records for op in ops):
        who = tuple(int(t) for t in np.flatnonzero(need[position]))
        if who:
            items.append(WorkItem(record, op, who))
    return Plan(dataset.key, targets, items, stored, since, list(dataset.listing.rejects), notes)


def _refuse_changed_folder(store: Store, dataset: "ResolvedDataset", encoder: str, wanted: dict[str, Any]) -> None:
    """A table whose recorded listing differs from the folder's listing now: say how, and the fix."""
    recorded = store.fingerprint(dataset.key, encoder).get("dataset")
    now = wanted["dataset"]
    if not isinstance(recorded, dict) or recorded.get("listing") == now["listing"]:
        return  # the same listing, or a table from before listings were recorded (the fingerprint check says so)
    rows = store.scan(dataset.key, encoder, columns=["image_id", "split", "label"])
    stored = pa.Table.from_pydict({"image_id": rows.column("image_id"), "split": rows.column("split"), "label": rows.column("label")})
    stored = stored.group_by(["image_id", "split", "label"]).aggregate([])
    current = {record.image_id: (record.split, record.label) for record in dataset.listing.records}
    gone = changed = 0
    for image_id, split, label in zip(*(stored.column(c).to_pylist() for c in ("image_id", "split", "label"))):
        if image_id not in current:
            gone += 1
        elif current[image_id] != (split, label):
            changed += 1
    where = dataset.identity["root"] or dataset.name
    raise DatasetChangedError(
        dataset.key, encoder,
        f"{where} has changed since table {table_name(dataset.key, encoder)} was extracted from it: it listed "
        f"{recorded.get('images', '?')} images then and {now['images']} now; {gone} stored image(s) are gone or renamed "
        f"and {changed} have another label or split. Refusing to mix them",
    )
