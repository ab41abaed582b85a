"""Where embeddings and results live: a workspace root (--home / BENCH_HOME / cwd). Vector indexes
for interactive queries live inside the embedding tables (`python -m bench vector-index build`)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError


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
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def results(self) -> Path:
        return self.reports / "results"

    @property
    def superseded(self) -> Path:
        """Where a cell goes when it is recomputed because one of its inputs changed."""
        return self.reports / "superseded"

    @property
    def rejects(self) -> Path:
        return self.reports / "rejects"

    def ensure_writable(self) -> None:
        """Fail before any work, with the fix, if results or embeddings could not be written here.
        Checks by writing a scratch folder into the nearest existing ancestor and removing it, so
        nothing is left behind either way."""
        places = [("--home", self.root, "choose a folder (--home DIR or BENCH_HOME)")]
        if "://" not in self.embeddings_uri:
            places.append(("BENCH_EMBEDDINGS_URI", Path(self.embeddings_uri), "set BENCH_EMBEDDINGS_URI to a folder, or unset it"))
        for option, path, fix in places:
            existing = path
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                what = "a file where the store's folder should be" if option == "BENCH_EMBEDDINGS_URI" else "a file, not a folder"
                raise UsageError(f"{option} {path}: {existing} is {what}; {fix}")
            try:
                shutil.rmtree(tempfile.mkdtemp(prefix=".bench-write-check-", dir=existing))
            except OSError as error:
                raise UsageError(f"{option} {path}: cannot write in {existing} ({error.strerror or error}); {fix}") from None
