"""mitigate's pictures: the trace of every processing group before and after the method, with
intervals, the semantic price, and the rule under its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import mitigation, processing, results
from bench.boards import Board
from bench.report import plots
from bench.report.captions import TaskView, interval_rule
from bench.results import Cell
from bench.tasks.mitigate import GAP, PROBE, SHORT, STAGES, group_metric

METHOD_WORDS = {
    mitigation.PROJECTION: "projection: the processing subspace a linear probe finds (bench.tasks.erasure) is projected out of "
                           "every vector",
    mitigation.ADVERSARIAL: "adversarial: a D × D linear map with a bias (the identity at first) is trained against a processing "
                            "classifier retrained on its output every step, with a penalty (λ = {penalty}) on how far it moves the "
                            "train vectors (both in units of each dimension's train spread); W f + b replaces every vector",
    mitigation.NORMALISE: "normalise: each processing class is standardised by its own train mean and standard deviation, "
                          "(f − mean_c) / std_c, so the query's processing class must be known at test time (as every database "
                          "vector's); a class it has no statistics for gets those pooled over the classes it was fitted on",
}


def method_of(cell: Cell) -> str:
    """The cell's method: projection's cells name none (their condition is what it was before the other methods)."""
    return str(cell.settings.get("method", mitigation.DEFAULT_METHOD))


def penalty_of(cell: Cell) -> str:
    """The adversarial map's λ: the condition names it only when it is not the default."""
    return str(cell.settings.get("penalty", f"{mitigation.AdversarialSettings().penalty:g}"))


def rule(cells: list[Cell]) -> str:
    methods = sorted({method_of(cell) for cell in cells})
    penalty = " or ".join(sorted({penalty_of(cell) for cell in cells if method_of(cell) == mitigation.ADVERSARIAL}))
    fitted = results.setting(cells, "group")
    chances = ", ".join(f"{SHORT[group]} {100.0 / len(members):.1f} %" for group, members in processing.GROUPS.items())
    words = " / ".join(METHOD_WORDS[method].format(penalty=penalty) for method in methods)
    return (f"{words}. Fitted per encoder on the {fitted} classes of the train "
            "split alone, applied in memory to train and val under every processing (vectors normalised again). "
            f"gap / probe / sem before: the {fitted} group on the original vectors: knn-influence pos-same − neg-same "
            f"({results.setting(cells, 'k')}-NN, {results.setting(cells, 'seeds')} seeds), the processing probe's accuracy "
            f"(probe-processing's protocol: {results.setting(cells, 'trials')}-trial search, {results.setting(cells, 'epochs')} "
            "epochs) and semantic kNN accuracy (all-same); price = sem after − sem before. <group> gap / probe: the same gap and "
            f"probe AFTER the method on each group: the {fitted} columns are the trace it was fitted to remove, the others its "
            f"transfer to traces it never saw (their before values are in the cell and the report); probe chance: {chances}. "
            + interval_rule("val image", cells, "0 (probes: chance)") + " Before and after share their resamples; the price has "
            "an interval and no test (a change of accuracy is no trace).")


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """Per group (columns) and encoder (rows): the gap and the probe before and after, with intervals."""
    cells = board.ordered()
    groups = list(processing.GROUPS)
    figure, axes = plt.subplots(2, len(groups), figsize=(3.0 * len(groups), 2.2 + 1.2 * len(cells)), sharey=True, squeeze=False)
    for column, group in enumerate(groups):
        chance = cells[0].value(f"group.{group}.chance")
        plots.interval_panel(axes[0][column], cells, [(group_metric(group, stage, GAP), stage) for stage in STAGES],
                             f"{group}: kNN gap pos−neg", 0.0)
        plots.interval_panel(axes[1][column], cells, [(group_metric(group, stage, PROBE), stage) for stage in STAGES],
                             f"{group}: probe (%); line: chance", chance, True)
    plots.interval_legend(axes[0][-1], cells, list(STAGES))
    figure.subplots_adjust(hspace=0.45)  # room for the top row's axis labels
    method = method_of(cells[0])
    fitted = cells[0].setting("group")
    return [plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('mitigate', board.dataset, board.condition)}.png"),
                         f"Removing the {fitted} trace by {method} on {board.title()} ({board.condition}), per encoder: the kNN gap "
                         "(top) and the processing probe (bottom) of every group before (circles) and after (squares), with 95 % "
                         f"bootstrap intervals over val images; hollow: not significant on its own. The {fitted} column is the "
                         "trace the method was fitted on; the others show what it does to traces it never saw.")]


VIEW = TaskView(rule, figures)
