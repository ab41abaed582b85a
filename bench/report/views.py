"""Every task's view (the rule under its tables, its figures, the words of its gallery), by task name."""

from __future__ import annotations

from bench.report import knn_influence, masking, mitigate, paircams, probes, similarity
from bench.report.captions import View

VIEWS: dict[str, View] = {
    "knn-influence": knn_influence.VIEW,
    "paircams": paircams.VIEW,
    "similarity": similarity.VIEW,
    "masking": masking.VIEW,
    "probe-processing": probes.PROCESSING_VIEW,
    "probe-acquisition": probes.ACQUISITION_VIEW,
    "mitigate": mitigate.VIEW,
}


def of(task: str) -> View:
    """The task's view; a task without one gets an empty rule and no figures."""
    return VIEWS.get(task, View(rule=lambda cells: ""))
