"""What an extraction reports: a summary per encoder and the rejects file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from bench.naming import encoder_slug, safe_part


@dataclass
class ExtractionSummary:
    dataset: str
    encoder: str
    images: int = 0  # items run through the encoder in this call
    rows_written: int = 0
    rows_skipped: int = 0  # already in the store
    rejects: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)  # decoded, but the decoder warned
    seconds: float = 0.0
    forward_seconds: float = 0.0  # of `seconds`, the time spent in this encoder's forward passes

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.dataset} x {self.encoder}: {self.images} images in {self.seconds:.1f} s "
            f"({self.images_per_second:.1f} img/s), {self.rows_written} rows written, "
            f"{self.rows_skipped} already stored, {len(self.rejects)} rejected"
        )

    def report(self, rejects_dir: Path | None, console: Console, quiet: bool = False) -> None:
        """Write this run's rejects and warnings beside the results, and print the summary line."""
        if (self.rejects or self.warnings) and rejects_dir is not None:
            path = self._write_rejects(rejects_dir)
            if self.rejects:
                console.print(f"{len(self.rejects)} rejected images listed in {path}")
            if self.warnings:
                console.print(f"{len(self.warnings)} images decoded with warnings (e.g. {self.warnings[0]['reason']}), listed in {path}")
        if not quiet:
            console.print(self.line())

    def _write_rejects(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{safe_part(self.dataset)}__{encoder_slug(self.encoder)}.jsonl"
        with open(path, "w", encoding="utf-8") as handle:  # this run's rejects; a rerun lists them again
            for kind, entries in (("rejected", self.rejects), ("warning", self.warnings)):
                for entry in entries:
                    handle.write(json.dumps({**entry, "kind": kind}) + "\n")
        return path
