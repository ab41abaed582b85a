"""A network's FLOPs and parameters are counted once: shipped for the catalog at the library
versions they were counted with, kept on this machine for any other network, shared by every
encoder of one network; and the plan's device follows from the options, not the planning machine."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bench import encoders
from bench.encoders import counted
from bench.extraction import costs
from bench.extraction.estimate import assumed_device
from bench.extraction.settings import ExtractionSettings

EFFNET = "effnet/lite0.in1k"


def test_a_count_is_kept_and_read_back_without_counting_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = tmp_path / "cache" / costs.KEPT_FILE
    spec = encoders.get(EFFNET)
    first = costs.CostBook(kept, shipped={}).cost(spec)
    assert first.source == "counted" and first.flops > 1e8 and first.params > 1e6
    assert json.loads(kept.read_text())[costs.library_versions()][costs.shape_key(spec)] == [first.flops, first.params]

    def no_count(spec):
        raise AssertionError(f"{spec.name} was counted again")

    monkeypatch.setattr(costs, "count", no_count)
    again = costs.CostBook(kept, shipped={}).cost(spec)
    assert (again.flops, again.params, again.source) == (first.flops, first.params, "kept")


def test_encoders_of_one_network_share_its_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = encoders.get(EFFNET)
    twin = dataclasses.replace(spec, name="sup/twin.other", pretrained="other", source="elsewhere")
    other_size = dataclasses.replace(spec, name="sup/wide.other", input_size=256)
    assert costs.shape_key(twin) == costs.shape_key(spec) != costs.shape_key(other_size)
    counts: list[str] = []
    real = costs.count
    monkeypatch.setattr(costs, "count", lambda chosen: counts.append(chosen.name) or real(chosen))
    book = costs.CostBook(tmp_path / costs.KEPT_FILE, shipped={})
    assert book.cost(spec).flops == book.cost(twin).flops < book.cost(other_size).flops
    assert counts == [EFFNET, "sup/wide.other"]


def test_counts_of_other_library_versions_are_not_used(tmp_path: Path) -> None:
    spec = encoders.get(EFFNET)
    kept = tmp_path / costs.KEPT_FILE
    kept.write_text(json.dumps({"torch 0.0": {costs.shape_key(spec): [1.0, 1]}}))
    found = costs.CostBook(kept, shipped={}).cost(spec)
    assert found.source == "counted" and found.flops > 1.0
    assert set(json.loads(kept.read_text())) == {"torch 0.0", costs.library_versions()}  # the other version's counts stay


def test_shipped_counts_match_a_count_made_now() -> None:
    if counted.COUNTED_WITH != costs.library_versions():
        pytest.skip(f"the shipped counts are of {counted.COUNTED_WITH or 'no versions'}; installed: {costs.library_versions()}")
    names = [name for name in encoders.expand(["paper", "offline"])]
    assert {costs.shape_key(encoders.get(name)) for name in names} <= set(counted.COSTS)
    for name in (EFFNET, "timm/resnet50.a1_in1k"):  # a convolutional and a checkpoint-free Hub network, counted in seconds
        spec = encoders.get(name)
        flops, params = costs.count(spec)
        assert counted.COSTS[costs.shape_key(spec)] == (pytest.approx(flops), params)


def test_the_plan_device_follows_the_options(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a planning machine with a GPU
    assert assumed_device(ExtractionSettings(device="auto", engine="ray")) == "cpu"  # Ray's workers are not this machine
    assert assumed_device(ExtractionSettings(device="auto", engine="local")) == "cuda"  # the local engine runs here
    assert assumed_device(ExtractionSettings(device="cpu", engine="local")) == "cpu"
