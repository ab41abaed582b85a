"""Extraction: dataset records -> processing op -> encoders -> rows in the store, resumable.

Four stages with plain data between them, so that engines differ only in how they schedule
them: `plan` (what is missing), `prepare` (decode, process, geometry: pure functions of a
record), `embed` (a batch through a model) and `commit` (idempotent upserts into the store).
`extract` runs them with the engine the settings name. Torch loads only when work starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.extraction.settings import ENGINES, PRECISIONS, ExtractionSettings

if TYPE_CHECKING:
    from bench.extraction.engine import extract

__all__ = ["ENGINES", "PRECISIONS", "ExtractionSettings", "extract"]


def __getattr__(name: str) -> Any:
    if name == "extract":  # the stages import torch and LanceDB: only when extraction runs
        from bench.extraction import engine

        return engine.extract
    raise AttributeError(f"module 'bench.extraction' has no attribute {name!r}")
