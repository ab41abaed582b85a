"""How extraction runs (device, batching, workers, commits, precision, engine): one value object
built once from the command line and handed to every stage and engine."""

from __future__ import annotations

from dataclasses import dataclass

from bench.errors import UsageError

PRECISIONS = ("fp32", "bf16", "fp16")
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class ExtractionSettings:
    device: str = "auto"  # auto, cpu, cuda, cuda:N, mps
    batch_size: int | None = None  # None: 8 on a CPU, 256 on an accelerator
    workers: int | None = None  # DataLoader worker processes; None: 0 on a CPU, every core otherwise
    commit_seconds: float = 5.0  # commit rows at least this often
    precision: str = "fp32"  # the forward pass's dtype; vectors are stored as float32 either way
    engine: str = "local"
    ray_address: str | None = None  # join this Ray cluster (engine ray); None starts a local one

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.engine not in ENGINES:
            raise UsageError(f"--engine {self.engine!r}: choose one of {', '.join(ENGINES)}")
        if self.ray_address and self.engine != "ray":
            raise UsageError(f"--ray-address {self.ray_address}: add --engine ray (the local engine runs in this process)")
        if self.workers is not None and self.workers < 0:
            raise UsageError(f"--workers {self.workers}: give 0 (decode in the main process) or a positive number")
        if self.batch_size is not None and self.batch_size < 1:
            raise UsageError(f"--batch-size {self.batch_size}: must be at least 1")
        if self.commit_seconds < 0:
            raise UsageError(f"--commit-seconds {self.commit_seconds}: must be 0 or more")
