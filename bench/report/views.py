"""Every task's view (the rule under its tables, its figures, the words of its gallery): the task
names it in `TaskSpec.view` ("module:attribute"), and it is imported only when something is drawn."""

from __future__ import annotations

import importlib

from bench.errors import BenchError
from bench.report.captions import TaskView
from bench.tasks import TaskSpec


class MissingViewError(BenchError, LookupError):
    """A task names a view that does not exist."""


def of(task: TaskSpec) -> TaskView:
    """The view the task declares; one that cannot be found is an error naming the task and the view."""
    module, _, attribute = task.view.partition(":")
    if not module:
        raise MissingViewError(f"task {task.name!r} declares no view: set TaskSpec.view to the module that holds its TaskView")
    try:
        found = getattr(importlib.import_module(module), attribute or "VIEW")
    except (ImportError, AttributeError) as error:
        raise MissingViewError(f"task {task.name!r} declares the view {task.view!r}, which cannot be loaded ({error})") from None
    if not isinstance(found, TaskView):
        raise MissingViewError(f"task {task.name!r} declares the view {task.view!r}, which is a {type(found).__name__}, not a TaskView")
    return found
