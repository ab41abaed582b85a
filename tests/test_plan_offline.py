"""`--plan` downloads nothing: forward passes are timed on the architecture with random weights,
the table says whose weights are not on this machine, and a library reaching for the network
fails at once, once per encoder, naming the encoder and the offline variables."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import encoders
from bench.encoders import counted, loaders

NOT_CACHED = ("timm/resnet50.a1_in1k", "mocov3/resnet50")  # weights from the Hub and from a URL, absent in the test's caches
PLAN = ("extract", "--dataset", "demo-mini", "--processings", "original", "--splits", "val", "--plan")


def _never(*arguments, **options):
    raise AssertionError("a plan loaded or downloaded weights")


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Loading weights fails the test; the caches are empty folders."""
    monkeypatch.setattr(encoders, "load", _never)
    monkeypatch.setattr(loaders, "load", _never)
    for name, chosen in loaders.LOADERS.items():
        monkeypatch.setitem(loaders.LOADERS, name, dataclasses.replace(chosen, build=_never))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no counts kept from earlier plans
    monkeypatch.setenv("COLUMNS", "400")  # the whole table on one line per encoder


def test_a_plan_times_random_weights_and_says_which_weights_are_missing(no_weights: None, tmp_path: Path, capsys) -> None:
    code = cli.main(["--home", str(tmp_path / "home"), *PLAN, "--device", "cpu", "--encoders", ",".join(NOT_CACHED)])
    out = " ".join(capsys.readouterr().err.split())
    assert code == 0, out
    assert out.count("to download (≈") == len(NOT_CACHED)  # with the size of the weights
    assert "img/s" in out and "unknown" not in out
    assert "forward passes on cpu (assumed; batches of 8)" in out  # the device and batch the estimate assumes, stated
    assert not (tmp_path / "torch").exists() and not (tmp_path / "hub").exists()
    assert not (tmp_path / "home" / "embeddings").exists()


def test_network_access_while_planning_fails_at_once_once_per_encoder(no_weights: None, tmp_path: Path, monkeypatch, capsys) -> None:
    tries: list[str] = []
    timm = loaders.LOADERS["timm"]
    monkeypatch.setattr(counted, "COUNTED_WITH", "")  # no shipped counts: every network is built to be counted

    def reaching(spec):  # an architecture whose library fetches its configuration from the Hub
        tries.append(spec.name)
        socket.create_connection(("192.0.2.1", 443), timeout=60).close()  # TEST-NET: would hang for the timeout if it were tried
        return timm.architecture(spec)

    monkeypatch.setitem(loaders.LOADERS, "timm", dataclasses.replace(timm, architecture=reaching))
    chosen = ("timm/resnet50.a1_in1k", "timm/resnet101.a1h_in1k", "mocov3/resnet50")
    code = cli.main(["--home", str(tmp_path / "home"), *PLAN, "--encoders", ",".join(chosen)])
    out = " ".join(capsys.readouterr().err.split())
    assert code == 0, out
    assert sorted(tries) == sorted(chosen[:2])  # each tried once, then left out
    for name in chosen[:2]:
        assert f"{name}: building it needs the network" in out
    assert "HF_HUB_OFFLINE=1" in out
    assert "img/s" in out  # the encoder that needs no network is still timed
