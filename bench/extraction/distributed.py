"""The Ray engine: the same plan, prepare, embed and commit stages on Ray Data.

The plan's items become a Ray dataset; the prepare stage runs as CPU map tasks; each encoder runs
in a pool of actors (one GPU each when the cluster has GPUs, CPU actors otherwise); workers write
each encoder's rows as Lance fragments of its table, and this process (the driver) commits them
every few seconds. Ray retries a task or restarts an actor whose process dies; only fragments
that reach the driver are committed, so a retried batch is never stored twice, and a killed run
resumes from what was committed, like the local engine.
"""

from __future__ import annotations

import os
import pickle
import time
import warnings
from typing import Any

import numpy as np
from rich.console import Console

from bench.errors import DependencyError
from bench.extraction.engine import ExtractionSummary, progress_bar, record_problem
from bench.extraction.plan import Plan
from bench.extraction.settings import ExtractionSettings
from bench.store import Store

PASSED_ENVIRONMENT = ("AWS_", "BENCH_", "HF_", "GOOGLE_", "AZURE_")  # settings workers need to reach the store and weights


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise DependencyError('--engine ray needs Ray Data, which is not installed: pip install -e ".[ray]"') from None
    return ray


def connect(settings: ExtractionSettings) -> bool:
    """Join the cluster at --ray-address, or start a local one; True when this call started Ray."""
    import logging

    ray = _ray()
    if ray.is_initialized():
        return False
    # Ray starts its processes by fork + exec: the Lance runtime's fork warnings do not apply.
    warnings.filterwarnings("ignore", message=".*fork support is experimental.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*lance is not fork-safe.*", category=UserWarning)
    environment = {name: value for name, value in os.environ.items() if name.startswith(PASSED_ENVIRONMENT)}
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False,
                               "runtime_env": {"env_vars": environment}}
    if settings.ray_address:
        ray.init(address=settings.ray_address, **options)
    else:
        ray.init(**options)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    return True


def _item_rows(plan: Plan) -> list[dict[str, Any]]:
    return [{"index": index, "item": pickle.dumps(item)} for index, item in enumerate(plan.items)]


def _view_key(view) -> str:
    return f"{view.size}_{view.interpolation}_{view.mode}"


class Prepare:
    """Prepare stage for a batch of items: pixels per view (zeros where an item lacks the view),
    or the error that made it a reject, and the decoder's warnings."""

    def __init__(self, views_of_targets: dict[int, Any], seed: int):
        self.views_of_targets = views_of_targets
        self.views = list(dict.fromkeys(views_of_targets.values()))
        self.seed = seed

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from bench.extraction.prepare import DECODE_ERRORS, prepare

        count = len(batch["index"])
        out: dict[str, np.ndarray] = {"index": batch["index"], "item": batch["item"]}
        for view in self.views:
            out[f"pixels_{_view_key(view)}"] = np.zeros((count, 3, view.size, view.size), dtype=np.uint8)
        errors, warned = [], []
        for row, payload in enumerate(batch["item"]):
            item = pickle.loads(payload)
            try:
                needed = {self.views_of_targets[t] for t in item.targets}
                prepared = prepare(item.record, item.op, [view for view in self.views if view in needed], self.seed)
            except DECODE_ERRORS as error:
                errors.append(f"{type(error).__name__}: {error}")
                warned.append("")
                continue
            for view, pixels in prepared.pixels.items():
                out[f"pixels_{_view_key(view)}"][row] = pixels.numpy()
            errors.append("")
            warned.append("\n".join(prepared.warnings))
        out["error"] = np.asarray(errors, dtype=object)
        out["warnings"] = np.asarray(warned, dtype=object)
        return out


class Embed:
    """Embed stage for one encoder: loads it once per actor, adds `vector_<t>` (zeros where the
    item does not need this encoder or failed to decode)."""

    def __init__(self, spec, target: int, view, device: str, precision: str, threads: int | None):
        import torch

        from bench import encoders
        from bench.extraction.embed import Embedder
        from bench.runtime import keep_freed_memory, pick_device

        if threads:
            torch.set_num_threads(threads)
        keep_freed_memory()
        self.target = target
        self.column = f"pixels_{_view_key(view)}"
        self.embedder = Embedder(encoders.load(spec), pick_device(device), precision)
        self.dim = spec.embed_dim

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        count = len(batch["index"])
        wanted = np.array([not batch["error"][row] and self.target in pickle.loads(batch["item"][row]).targets for row in range(count)])
        vectors = np.zeros((count, self.dim), dtype=np.float32)
        if wanted.any():
            vectors[wanted] = self.embedder(torch.from_numpy(np.ascontiguousarray(batch[self.column][wanted])))
        batch[f"vector_{self.target}"] = vectors
        batch[f"wanted_{self.target}"] = wanted
        return batch


class Write:
    """Write stage: each encoder's rows of the batch as Lance fragments of its table."""

    def __init__(self, writers: dict[int, Any], schemas: dict[int, Any]):
        self.writers = writers
        self.schemas = schemas

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from bench.extraction.commit import row
        from bench.store import rows_to_arrow

        items = [pickle.loads(payload) for payload in batch["item"]]
        out: dict[str, np.ndarray] = {"index": batch["index"], "error": batch["error"], "warnings": batch["warnings"]}
        for target, writer in self.writers.items():
            wanted = batch[f"wanted_{target}"]
            chosen = [items[position] for position in np.flatnonzero(wanted)]
            payload = b""
            if chosen:
                table = rows_to_arrow([row(item.record, item.op) for item in chosen], batch[f"vector_{target}"][wanted], self.schemas[target])
                payload = writer.write(table)
            out[f"fragments_{target}"] = np.asarray([payload] + [b""] * (len(items) - 1), dtype=object)
            out[f"written_{target}"] = np.asarray([len(chosen)] + [0] * (len(items) - 1))
        return out


def run(plan: Plan, settings: ExtractionSettings, store: Store, summaries: dict[str, ExtractionSummary], console: Console) -> None:
    """Embed every planned item with every encoder that lacks it, on Ray."""
    from bench.encoders.loaders import load  # a bad checkpoint fails here, before any table or cluster work
    from bench.runtime import cpu_count

    ray = _ray()
    working = [t for t in range(len(plan.targets)) if plan.missing(t)]
    for t in working:
        load(plan.targets[t].spec)
    schemas = {t: store.prepare(plan.dataset, plan.targets[t].spec.name, plan.targets[t].spec.embed_dim, plan.targets[t].fingerprint)
               for t in working}
    writers = {t: store.fragment_writer(plan.dataset, plan.targets[t].spec.name) for t in working}
    started_here = connect(settings)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", cpu_count()))
        batch_size = settings.batch_size or (256 if gpus else 8)
        prepare_stage = Prepare({t: plan.targets[t].view for t in working}, settings.seed)
        dataset = ray.data.from_items(_item_rows(plan), override_num_blocks=max(1, len(plan.items) // max(batch_size, 1)))
        dataset = dataset.map_batches(prepare_stage, batch_size=batch_size, num_cpus=1 if gpus else 0.01, batch_format="numpy")
        for t in working:
            # GPUs: each encoder's pool shares them, and prepare tasks decode on every core. CPU only:
            # Ray runs the prepare stage inside the (first) encoder's actor, so the actors share all
            # the cores and take two batches at a time: one decodes while the other runs the model.
            share = len(working)
            if gpus:
                resources = {"num_gpus": min(1.0, gpus / share), "num_cpus": 0.01}
                strategy, threads, device = ray.data.ActorPoolStrategy(size=max(1, gpus // share)), None, "cuda"
            else:
                resources = {"num_cpus": max(0.01, (cpus - 0.05) / share)}
                strategy = ray.data.ActorPoolStrategy(size=1, max_concurrent_calls_per_actor=2, enable_true_multi_threading=True)
                threads, device = max(1, cpus // share), "cpu"
            dataset = dataset.map_batches(
                Embed, fn_constructor_kwargs={"spec": plan.targets[t].spec, "target": t, "view": plan.targets[t].view, "device": device,
                                              "precision": settings.precision, "threads": threads},
                compute=strategy, batch_size=batch_size, batch_format="numpy", **resources,
            )
        dataset = dataset.map_batches(Write, fn_constructor_kwargs={"writers": writers, "schemas": schemas}, batch_size=batch_size,
                                      compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.01, batch_format="numpy")
        _commit_as_they_come(dataset, plan, settings, store, summaries, console, working)
    finally:
        if started_here:
            ray.shutdown()


def _commit_as_they_come(dataset, plan: Plan, settings: ExtractionSettings, store: Store, summaries: dict[str, ExtractionSummary],
                         console: Console, working: list[int]) -> None:
    """Collect the workers' fragments and commit them every `commit_seconds`, with a progress bar."""
    pending: dict[int, list[bytes]] = {t: [] for t in working}
    counts: dict[int, int] = {t: 0 for t in working}
    since = {t: plan.since[plan.targets[t].spec.name] for t in working}
    last = time.monotonic()

    def commit() -> None:
        for t in working:
            if pending[t]:
                name = plan.targets[t].spec.name
                written = store.commit_fragments(plan.dataset, name, pending[t], since[t])
                since[t] = written.version if written.appended else None
                summaries[name].rows_written += counts[t]
                pending[t], counts[t] = [], 0

    names = ", ".join(plan.targets[t].spec.name for t in working)
    began = time.perf_counter()
    done = 0
    with progress_bar(console) as progress:
        bar = progress.add_task(f"extract {plan.dataset} x {names} (ray)", total=len(plan.items), rate=0.0)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for index, error, warned in zip(batch["index"], batch["error"], batch["warnings"]):
                item = plan.items[int(index)]
                for kind, text in (("rejects", error), *(("warnings", line) for line in str(warned).splitlines() if line)):
                    if text:
                        record_problem(summaries, plan, item, kind, str(text))
            for t in working:
                pending[t] += [payload for payload in batch[f"fragments_{t}"] if payload]
                counts[t] += int(np.sum(batch[f"written_{t}"]))
                summaries[plan.targets[t].spec.name].images += int(np.sum(batch[f"written_{t}"]))
            done += len(batch["index"])
            progress.update(bar, completed=done, rate=done / max(time.perf_counter() - began, 1e-9))
            if time.monotonic() - last >= settings.commit_seconds:
                commit()
                last = time.monotonic()
        commit()
    for t in working:
        store.compact(plan.dataset, plan.targets[t].spec.name)


def map_cells(function, arguments: list[tuple], settings: ExtractionSettings) -> list[Any]:
    """`function(*args)` for every args, each as a Ray task with the resources a cell needs (a
    core, and a GPU when the cluster has them and --device allows); results in order."""
    ray = _ray()
    started_here = connect(settings)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        resources = {"num_cpus": 1, "num_gpus": 1 if gpus and settings.device != "cpu" else 0}
        task = ray.remote(**resources)(function)
        return ray.get([task.remote(*args) for args in arguments])
    finally:
        if started_here:
            ray.shutdown()
