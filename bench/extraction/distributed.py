"""The Ray engine: the same plan, prepare, embed and commit stages on Ray Data.

The plan's items become a Ray dataset. With GPUs, the prepare stage runs as CPU map tasks on
every core and each encoder runs in a pool of GPU actors. Without GPUs, single-threaded actors
(one per core, up to a limit per node) each run a batch through the prepare stage and every
encoder, as the local engine does. Either way the embedding actors write each encoder's rows as
Lance fragments of its table, and this process (the driver) commits them every few seconds. Ray
retries a task or restarts an actor whose process dies; only fragments that reach the driver are
committed, so a retried batch is never stored twice, and a killed run resumes from what was
committed, like the local engine."""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from bench.encoders import depth
from bench.errors import DependencyError, UsageError
from bench.extraction.commit import BatchOutcome, Embedded
from bench.extraction.plan import Plan
from bench.extraction.settings import ExtractionSettings
from bench.store import Store

if TYPE_CHECKING:
    import pyarrow as pa

    from bench.encoders.spec import EncoderSpec
    from bench.extraction.prepare import InputShape
    from bench.store import FragmentWriter

MAX_CPU_ACTORS_PER_NODE = 8  # on CPU-only clusters; each actor holds a copy of every encoder
LOG_LEVEL_NOTICE = "Set ray log level from environment variable"  # what Ray's C++ layer says when told its level
PASSED_ENVIRONMENT = ("AWS_", "BENCH_", "HF_", "GOOGLE_", "AZURE_")  # settings workers need to reach the store and weights


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise DependencyError('--engine ray needs Ray Data, which is not installed: pip install -e ".[ray]"') from None
    return ray


@contextlib.contextmanager
def _stderr_without(notice: str) -> Iterator[None]:
    """Run the block with this process's stderr (file descriptor 2, which Ray's C++ layer writes
    to) captured, then pass on every captured line but those containing `notice`."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if notice not in line:
                    sys.stderr.write(line)


def _check_reachable(address: str, seconds: float = 5.0) -> None:
    """Refuse a HOST:PORT (or ray://HOST:PORT) where nothing answers, at once: Ray itself retries
    such an address for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as error:
        raise UsageError(f"--ray-address {address}: nothing answers there ({error}); start the cluster first "
                         "(ray start --head prints its address), or leave --ray-address out to start a local one") from None


def connect(settings: ExtractionSettings) -> bool:
    """Join the cluster at --ray-address, or start a local one; True when this call started Ray."""
    import logging

    ray = _ray()
    if ray.is_initialized():
        return False
    # Ray starts its processes by fork + exec: the Lance runtime's fork warnings do not apply.
    warnings.filterwarnings("ignore", message=".*fork support is experimental.*", category=RuntimeWarning)
    warnings.filterwarnings("ignore", message=".*lance is not fork-safe.*", category=UserWarning)
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    # Ray's C++ layer prints false alarms to the terminal (for every Ray Data actor pool: "has
    # constructor arguments in the object store"); real failures still raise Python errors.
    # Setting RAY_BACKEND_LOG_LEVEL yourself brings its lines back.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if settings.ray_address:
        _check_reachable(settings.ray_address)
        # a local cluster's workers inherit this process's environment; a running cluster's do not
        options["runtime_env"] = {"env_vars": {name: value for name, value in os.environ.items() if name.startswith(PASSED_ENVIRONMENT)}}
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local cluster starts sooner and makes no outside connection
    with _stderr_without(LOG_LEVEL_NOTICE):
        ray.init(address=settings.ray_address, **options)
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    return True


def _item_rows(plan: Plan) -> list[dict[str, Any]]:
    return [{"index": index, "item": pickle.dumps(item)} for index, item in enumerate(plan.items)]


def _shape_key(view) -> str:
    return f"{view.size}_{view.interpolation}"


def _items(batch: dict[str, np.ndarray]) -> list[Any]:
    return [pickle.loads(payload) for payload in batch["item"]]


class Prepare:
    """Prepare stage for a batch of items: pixels per view (zeros where an item lacks the view),
    or the error that made it a reject, and the decoder's warnings."""

    def __init__(self, views_of_targets: dict[int, Any]):
        self.views_of_targets = views_of_targets
        self.views = list(dict.fromkeys(views_of_targets.values()))

    def __call__(self, batch: dict[str, np.ndarray], items: list[Any] | None = None) -> dict[str, np.ndarray]:
        """`items`: the batch's unpickled items, when the caller already has them."""
        from bench.extraction.prepare import DECODE_ERRORS, prepare

        count = len(batch["index"])
        out: dict[str, np.ndarray] = {"index": batch["index"], "item": batch["item"]}
        for view in self.views:
            out[f"pixels_{_shape_key(view)}"] = np.zeros((count, 3, view.size, view.size), dtype=np.uint8)
        errors, warned = [], []
        for row, item in enumerate(_items(batch) if items is None else items):
            try:
                needed = {self.views_of_targets[t] for t in item.targets}
                prepared = prepare(item.record, item.op, [view for view in self.views if view in needed])
            except DECODE_ERRORS as error:
                errors.append(f"{type(error).__name__}: {error}")
                warned.append("")
                continue
            for view, pixels in prepared.pixels.items():
                out[f"pixels_{_shape_key(view)}"][row] = pixels.numpy()
            errors.append("")
            warned.append("\n".join(prepared.warnings))
        out["error"] = np.asarray(errors, dtype=object)
        out["warnings"] = np.asarray(warned, dtype=object)
        return out


@dataclass(frozen=True)
class Encoding:
    """One encoder's share of the embed stage: what to load, which pixels it reads, where its rows go."""

    target: int
    spec: EncoderSpec
    shape: InputShape
    writer: FragmentWriter  # writes rows as Lance fragments of this encoder's table
    schema: pa.Schema


def shared_pools(encodings: list[Encoding]) -> list[list[Encoding]]:
    """The encodings grouped into actor pools: one per encoder, its depths (`NAME@blockN`) and NAME
    itself in one pool, so that pool loads the network once and runs it once per batch for all."""
    pools: dict[str, list[Encoding]] = {}
    for encoding in encodings:
        pools.setdefault(depth.split(encoding.spec.name)[0], []).append(encoding)
    return list(pools.values())


class Embed:
    """Embed stage for one or more encoders, in an actor that loads them once: each encoder's rows
    of the batch are written as Lance fragments of its table, and the batch leaves with
    `fragments_<t>` and `written_<t>` in place of vectors. With `prepare`, the actor also runs the
    prepare stage first (CPU-only clusters: each actor does a batch's whole work, as the local
    engine does, instead of moving pixels between processes that share the same cores)."""

    def __init__(self, encodings: list[Encoding], device: str, precision: str, threads: int | None, prepare: Prepare | None, last: bool):
        import torch

        from bench import encoders
        from bench.extraction.embed import Embedder
        from bench.runtime import keep_freed_memory, pick_device

        if threads:
            torch.set_num_threads(threads)
        keep_freed_memory()
        self.encodings = encodings
        self.embedders = [Embedder(encoders.load(encoding.spec), pick_device(device), precision) for encoding in encodings]
        self.prepare = prepare
        self.last = last

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        from bench.extraction.commit import row
        from bench.store import rows_to_arrow

        items = _items(batch)
        if self.prepare is not None:
            batch = self.prepare(batch, items)
        count = len(items)
        for encoding, embedder in zip(self.encodings, self.embedders):
            wanted = np.array([not batch["error"][position] and encoding.target in item.targets for position, item in enumerate(items)])
            payload = b""
            if wanted.any():
                pixels = torch.from_numpy(np.ascontiguousarray(batch[f"pixels_{_shape_key(encoding.shape)}"][wanted]))
                chosen = [items[position] for position in np.flatnonzero(wanted)]
                table = rows_to_arrow([row(item.record, item.op) for item in chosen], embedder(pixels), encoding.schema)
                payload = encoding.writer.write(table)
            batch[f"fragments_{encoding.target}"] = np.asarray([payload] + [b""] * (count - 1), dtype=object)
            batch[f"written_{encoding.target}"] = np.asarray([int(wanted.sum())] + [0] * (count - 1))
        if self.last:  # only small columns travel back to the driver
            batch = {name: column for name, column in batch.items() if not name.startswith(("pixels_", "item"))}
        return batch


def _cpu_actors(cores_per_node: list[float]) -> tuple[int, int]:
    """(threads per actor, actors) for a cluster without GPUs. Single-threaded actors, one per
    core, run fastest: a multi-threaded forward pass stalls whenever any other process (Ray's
    own, the driver) takes one of its cores (measured on 2 cores, two encoders: one 2-thread
    actor 0.49 of the local engine's rate, two 1-thread actors 0.71). Each actor holds every
    encoder, so past MAX_CPU_ACTORS_PER_NODE actors a node's cores are shared out as threads."""
    nodes = [int(cores) for cores in cores_per_node if cores >= 1] or [1]
    threads = min(min(nodes), -(-max(nodes) // MAX_CPU_ACTORS_PER_NODE))  # every node hosts at least one actor
    return threads, sum(min(MAX_CPU_ACTORS_PER_NODE, cores // threads) for cores in nodes)


class RayEngine:
    """Ray Data: the models are checked to load (a bad checkpoint fails before any table or
    cluster work), the cluster is joined or started (a local one is stopped by `close`), and each
    batch's outcome comes back with the fragments its actors wrote. `staged`: prepare tasks feeding
    one actor pool per encoder (default when the cluster has GPUs and --device allows them) rather
    than actors that each do a batch's whole work (default otherwise)."""

    def __init__(self, plan: Plan, settings: ExtractionSettings, store: Store, staged: bool | None = None):
        from bench.encoders.loaders import load

        self.plan, self.settings, self.store, self.staged = plan, settings, store, staged
        self.ray = _ray()
        for t in plan.working():
            load(plan.targets[t].spec)
        self.started_here = connect(settings)  # a wrong --ray-address fails here, before any table is made

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()

    def batches(self, schemas: dict[int, pa.Schema]) -> Iterator[BatchOutcome]:
        """`schemas`: the tables' schemas, by target; the tables exist when this is called."""
        ray, plan, settings = self.ray, self.plan, self.settings
        working = list(schemas)
        encodings = [Encoding(t, plan.targets[t].spec, plan.targets[t].shape,
                              self.store.fragment_writer(plan.dataset, plan.targets[t].spec.name), schemas[t]) for t in working]
        gpus = int(ray.cluster_resources().get("GPU", 0)) if settings.device != "cpu" else 0
        staged = bool(gpus) if self.staged is None else self.staged
        batch_size = settings.batch_size or (256 if gpus else 8)
        prepare_stage = Prepare({t: plan.targets[t].shape for t in working})
        blocks = -(-len(plan.items) // batch_size)  # one batch each; a pool larger than this would idle
        dataset = ray.data.from_items(_item_rows(plan), override_num_blocks=blocks)
        common = {"batch_size": batch_size, "batch_format": "numpy"}
        if staged:
            # Prepare tasks decode on every core; each encoder's actor pool shares the GPUs. The depths
            # of one encoder (NAME@blockN) share a pool, so its network runs once per batch for all of them.
            dataset = dataset.map_batches(prepare_stage, num_cpus=1, **common)
            pools = shared_pools(encodings)
            share = len(pools)
            resources = {"num_gpus": min(1.0, gpus / share), "num_cpus": 0.01} if gpus else {"num_cpus": 0.01}
            for position, pool in enumerate(pools):
                dataset = dataset.map_batches(
                    Embed, fn_constructor_kwargs={"encodings": pool, "device": "cuda" if gpus else "cpu", "precision": settings.precision,
                                                  "threads": None if gpus else 1, "prepare": None, "last": position == share - 1},
                    compute=ray.data.ActorPoolStrategy(size=min(blocks, max(1, gpus // share))), **resources, **common)
        else:
            # Actors that each do a batch's whole work, as the local engine does, so pixels never
            # move between processes that share the same cores.
            threads, actors = _cpu_actors([node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]])
            dataset = dataset.map_batches(
                Embed, fn_constructor_kwargs={"encodings": encodings, "device": "cpu", "precision": settings.precision, "threads": threads,
                                              "prepare": prepare_stage, "last": True},
                compute=ray.data.ActorPoolStrategy(size=min(blocks, actors)), num_cpus=threads, **common)
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            problems: list[tuple[int, str, str]] = []
            for index, error, warned in zip(batch["index"], batch["error"], batch["warnings"]):
                problems += [(int(index), "rejects", str(error))] if error else []
                problems += [(int(index), "warnings", line) for line in str(warned).splitlines() if line]
            embedded = {t: Embedded(int(np.sum(batch[f"written_{t}"])), fragments=[payload for payload in batch[f"fragments_{t}"] if payload])
                        for t in working}
            yield BatchOutcome(len(batch["index"]), problems, embedded)


@contextlib.contextmanager
def session(settings: ExtractionSettings) -> Iterator[None]:
    """One Ray connection for a whole command: extraction and cell computations join it, and a
    local cluster started here stops when the block ends."""
    started_here = connect(settings)
    try:
        yield
    finally:
        if started_here:
            _ray().shutdown()


def map_cells(function, arguments: list[tuple], settings: ExtractionSettings) -> list[Any]:
    """`function(*args)` for every args, each as a Ray task with the resources a cell needs (a
    core, and a GPU when the cluster has them and --device allows); results in order."""
    with session(settings):
        ray = _ray()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        resources = {"num_cpus": 1, "num_gpus": 1 if gpus and settings.device != "cpu" else 0}
        task = ray.remote(**resources)(function)
        return ray.get([task.remote(*args) for args in arguments])
