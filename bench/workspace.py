"""Where embeddings, indexes and results live: a workspace root (--home / BENCH_HOME / cwd)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workspace:
    root: Path
    embeddings_uri: str  # any LanceDB URI; a folder under root by default

    @classmethod
    def at(cls, home: str | Path | None = None) -> "Workspace":
        root = Path(home or os.environ.get("BENCH_HOME") or Path.cwd()).expanduser().resolve()
        uri = os.environ.get("BENCH_EMBEDDINGS_URI") or str(root / "embeddings")
        return cls(root=root, embeddings_uri=uri)

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def results(self) -> Path:
        return self.reports / "results"

    @property
    def rejects(self) -> Path:
        return self.reports / "rejects"
