"""A dataset audit: for each file property, how strongly it goes with the class label, with an
interval, a permutation p-value and a false-discovery mark. Pure: it takes the listing and what
the files said, and returns a frozen outcome; reading, drawing and storing happen elsewhere."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.audit import association
from bench.audit.properties import PROPERTIES, Property, Reading
from bench.data.record import ImageRecord
from bench.seeding import stable_int

MEASURED, CONSTANT, LABEL, ONE_FILE = "measured", "constant", "label", "one file a class"
TOP_CLASSES = 3  # classes kept per value, most associated first
SHOWN_UNREADABLE = 5  # unreadable files named in the outcome


@dataclass(frozen=True)
class AuditSettings:
    """How the association is measured: every number of the outcome depends on these."""

    permutations: int = 999
    resamples: int = 1000
    seed: int = 0
    level: float = 0.05  # Benjamini–Hochberg false-discovery rate over the board's properties
    interval: float = 0.95


@dataclass(frozen=True)
class ValueLink:
    """One value of a property: how many images carry it and the classes over-represented among
    them, by standardized residual (observed − expected) / √expected, largest first."""

    value: str
    images: int
    classes: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Association:
    """One property against the label. `status` is measured, constant (one value: nothing to
    measure) or label (the property is what the labels are made of)."""

    name: str
    title: str
    status: str
    share: float  # images that carry the property (a value other than its "missing" one)
    values: tuple[ValueLink, ...]  # every value present, most frequent first
    v: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    marked: bool = False

    def strongest(self, count: int = 3) -> list[tuple[str, str, float]]:
        """The (value, class, residual) pairs with the largest residuals, one per value."""
        found = [(link.value, *link.classes[0]) for link in self.values if link.classes]
        return sorted(found, key=lambda item: -item[2])[:count]


@dataclass(frozen=True)
class AuditOutcome:
    """A dataset's audit: what was read, how it was measured, and one association per property."""

    dataset: str  # the dataset's key (store and results)
    title: str
    identity: dict[str, Any]
    records: int  # images listed
    readable: int  # images whose file could be read
    files: int  # distinct readable files: the unit resampled and permuted
    classes: int
    unreadable: int  # distinct files that could not be read
    unreadable_examples: tuple[tuple[str, str], ...]
    crops: int  # images cut from a larger file (their properties are the file's)
    simulated: int  # images whose capture is simulated at load time (not in the file)
    settings: AuditSettings
    properties: tuple[Association, ...]
    label_property: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    def family(self) -> list[Association]:
        """The properties the false-discovery rule runs over: the measured ones."""
        return [found for found in self.properties if found.status == MEASURED]


def _rng(settings: AuditSettings, name: str, purpose: str) -> np.random.Generator:
    return np.random.default_rng([settings.seed, stable_int(f"audit|{name}|{purpose}")])


def _links(table: np.ndarray, value_names: list[str], class_names: list[str]) -> tuple[ValueLink, ...]:
    scores = association.residuals(table)
    links = []
    for column in np.argsort(-table.sum(axis=0), kind="stable"):
        order = [row for row in np.argsort(-scores[:, column], kind="stable") if scores[row, column] > 0][:TOP_CLASSES]
        links.append(ValueLink(value_names[column], int(table[:, column].sum()),
                               tuple((class_names[row], float(scores[row, column])) for row in order)))
    return tuple(links)


def _associate(prop: Property, records: list[ImageRecord], reading: Reading, label_codes: np.ndarray, class_names: list[str],
               units: np.ndarray, files: list[str], strata: np.ndarray, status: str, settings: AuditSettings) -> Association:
    file_values = [reading.values[path][prop.name] for path in files]
    value_names = sorted(set(file_values))
    index = {value: code for code, value in enumerate(value_names)}
    coded = association.Coded(label_codes, units, np.array([index[value] for value in file_values], dtype=np.int64),
                              len(class_names), len(value_names))
    table = coded.table()
    carried = sum(table[:, index[value]].sum() for value in value_names if value != prop.missing)
    share = float(carried / max(len(records), 1))
    links = _links(table, value_names, class_names)
    if status == LABEL:
        return Association(prop.name, prop.title, LABEL, share, links)
    if len(value_names) < 2 or len(class_names) < 2:
        return Association(prop.name, prop.title, CONSTANT, share, links)
    if np.bincount(strata, minlength=len(class_names)).max() <= 1:  # each class one file: any property fixes the class
        return Association(prop.name, prop.title, ONE_FILE, share, links)
    coded = association.per_file(coded)  # V, its interval and its test count files, not crops; the shares above count images
    v = float(association.cramers_v(coded.table()))
    low, high = association.bootstrap_interval(coded, strata, settings.resamples, _rng(settings, prop.name, "bootstrap"), settings.interval)
    p = association.permutation_p(coded, v, settings.permutations, _rng(settings, prop.name, "permutation"))
    return Association(prop.name, prop.title, MEASURED, share, links, v, low, high, p)


def _marked(found: list[Association], level: float) -> list[Association]:
    measured = [index for index, item in enumerate(found) if item.status == MEASURED]
    passes = association.benjamini_hochberg([found[index].p or 1.0 for index in measured], level)
    out = list(found)
    for index, passed in zip(measured, passes):
        out[index] = dataclasses.replace(out[index], marked=passed)
    return out


def measure(dataset: str, title: str, identity: dict[str, Any], records: list[ImageRecord], reading: Reading,
            settings: AuditSettings = AuditSettings(), label_property: str | None = None) -> AuditOutcome:
    """The audit of a listing given what its files said (`properties.read`)."""
    readable = [record for record in records if record.path in reading.values]
    files = list(dict.fromkeys(record.path for record in readable))
    unit_of = {path: code for code, path in enumerate(files)}
    labels = sorted({(record.label, record.label_name) for record in readable})
    class_of = {label: code for code, (label, _) in enumerate(labels)}
    class_names = [name for _, name in labels]
    label_codes = np.array([class_of[record.label] for record in readable], dtype=np.int64)
    units = np.array([unit_of[record.path] for record in readable], dtype=np.int64)
    strata = np.full(len(files), len(class_names), dtype=np.int64)  # a file's stratum: the first class among its images
    np.minimum.at(strata, units, label_codes)
    found = [_associate(prop, readable, reading, label_codes, class_names, units, files, strata,
                        LABEL if prop.name == label_property else MEASURED, settings) for prop in PROPERTIES]
    return AuditOutcome(
        dataset=dataset, title=title, identity=identity, records=len(records), readable=len(readable), files=len(files),
        classes=len(class_names), unreadable=len(reading.unreadable),
        unreadable_examples=tuple(sorted(reading.unreadable.items())[:SHOWN_UNREADABLE]),
        crops=sum(record.crop is not None for record in readable), simulated=sum(record.capture is not None for record in readable),
        settings=settings, properties=tuple(_marked(found, settings.level)), label_property=label_property,
    )
