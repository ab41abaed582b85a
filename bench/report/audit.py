"""The audit board as people read it: a table for the terminal, the same rows as CSV,
Markdown and JSON, and a section of the report."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

from bench import tables
from bench.audit import stored
from bench.audit.measure import CONSTANT, LABEL, ONE_FILE, Association, AuditOutcome
from bench.bootstrap import MARK  # the one mark every board prints, which the Markdown writer keeps literal
from bench.report import render
from bench.report.pages import Section
from bench.tables import Grid

FORMATS = ("table", "csv", "markdown", "json")
HEADER = ["property", "carried by", "values", "Cramér's V [95 % interval]", "p", "classes most associated with a value"]
LABEL_TEXT = "the label itself: not audited"


def title(outcome: AuditOutcome) -> str:
    return f"audit · {outcome.title} · {outcome.readable} images, {outcome.files} files, {outcome.classes} classes"


def _percent(share: float) -> str:
    return f"{share * 100:g} %"


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value + 0.0:.2f}"


def strength(found: Association) -> str:
    """V with its interval and mark, or why there is none."""
    if found.status == CONSTANT:
        only = f" ({found.values[0].value})" if len(found.values) == 1 else ""
        return f"constant{only}: no association can be measured"
    if found.status == LABEL:
        return LABEL_TEXT
    if found.status == ONE_FILE:
        return "each class is one file: no association can be measured"
    return f"{_number(found.v)} [{_number(found.low)}, {_number(found.high)}]{MARK if found.marked else ''}"


def links(found: Association) -> str:
    """The values most tied to one class: `value → class (+residual)`."""
    if found.status == CONSTANT:
        return ""
    return "; ".join(f"{value} → {name} (+{score:.1f})" for value, name, score in found.strongest())


def rows(outcome: AuditOutcome) -> list[list[str]]:
    """The board's rows as printed: one per property."""
    return [[found.title, _percent(round(found.share, 2)), str(len(found.values)), strength(found),
             "" if found.p is None else f"{found.p:.3f}", links(found)] for found in outcome.properties]


def rule(outcome: AuditOutcome) -> str:
    """What the numbers and the mark mean, and what was read, under the board."""
    settings = outcome.settings
    family = outcome.family()
    lines = [
        "Cramér's V with Bergsma's (2013) bias correction: 0 = the property tells nothing about the class, 1 = it fixes it. "
        f"Interval: {_percent(settings.interval)} percentile bootstrap, files drawn with replacement within each class "
        f"({settings.resamples} resamples, seed {settings.seed}), moved back by the resamples' mean excess over V (repeated "
        "files inflate V), clipped to [0, 1]. p: one-sided permutation test, the "
        f"property's values permuted among files ({settings.permutations} permutations; exact under the null of no "
        f"association). {MARK} = p passes Benjamini–Hochberg at a {_percent(settings.level)} false-discovery rate over this board's "
        f"{len(family)} measured properties{'' if family else (' (none: each class is one file)' if any(found.status == ONE_FILE for found in outcome.properties) else ' (none: no property varies)')}. "
        "The unit is the file: images cut from one file move together and count once in V. "
        "'not JPEG' and 'absent' count as values of their own. Classes most associated: per value, the class with the "
        "largest standardized residual (observed − expected) / √expected.",
    ]
    if outcome.unreadable:
        examples = "; ".join(f"{path} ({reason})" for path, reason in outcome.unreadable_examples)
        lines.append(f"{outcome.unreadable} file(s) unreadable, left out: {examples}.")
    if outcome.crops:
        lines.append(f"{outcome.crops} images are crops: their properties are those of the file they are cut from "
                     "(pixel size included).")
    if outcome.simulated:
        lines.append(f"{outcome.simulated} images carry a simulated capture applied at load time: it is not in the file, "
                     "so this audit does not see it.")
    return " ".join(lines)


def grid(outcome: AuditOutcome) -> Grid:
    return tables.grid(title(outcome), HEADER, rows(outcome), caption=rule(outcome), numbers=(1, 2, 3, 4), keep_whole=(3,), literal=True)


def as_csv(outcomes: list[AuditOutcome]) -> str:
    """One row per dataset and property, every number unrounded."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["dataset", "dataset_title", "property", "title", "status", "share", "values", "v", "low", "high", "p",
                     "marked", "family", "classes_most_associated"])
    for outcome in outcomes:
        size = len(outcome.family())
        for found in outcome.properties:
            numbers = ["" if value is None else repr(value) for value in (found.v, found.low, found.high, found.p)]
            writer.writerow([outcome.dataset, outcome.title, found.name, found.title, found.status, repr(found.share),
                             len(found.values), *numbers, found.marked, size, links(found)])
    return out.getvalue()


def as_markdown(outcomes: list[AuditOutcome]) -> str:
    """Each board as a Markdown table, the values as the terminal prints them, the rule below."""
    return "\n".join(line for outcome in outcomes for line in [*render.markdown(grid(outcome)), ""])


def export(outcomes: list[AuditOutcome], form: str) -> str:
    """The boards as CSV, Markdown or JSON (the stored documents)."""
    if form == "csv":
        return as_csv(outcomes)
    if form == "markdown":
        return as_markdown(outcomes)
    return json.dumps({"audits": [stored.as_json(outcome) for outcome in outcomes]}, indent=2, ensure_ascii=False)


def section(outcome: AuditOutcome) -> Section:
    """The report's section for one audit: what it measures, and the board with its rule."""
    found = Section(f"dataset audit · {outcome.title}",
                    "How strongly the class labels go with properties of the files as stored (read from their headers, no "
                    "encoder): a label tied to a file property is a shortcut any encoder can learn.")
    found.tables.append(dataclasses.replace(grid(outcome), title=f"{outcome.readable} images, {outcome.files} files, {outcome.classes} classes"))
    return found
