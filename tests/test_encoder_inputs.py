"""Encoders files and checkpoints as users give them: devices, huge files and looping sets are one
line, and a checkpoint is known by its checksum, not by where it lies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import encoders
from bench.encoders import custom
from bench.encoders.catalog import SETS
from bench.extraction.fingerprint import fingerprint


def bench(*arguments: str) -> int:
    try:
        return cli.main(list(arguments))
    except SystemExit as stopped:
        return int(stopped.code)


def test_an_encoders_file_that_is_a_device_is_refused_without_reading_it(tmp_path: Path, capsys) -> None:
    assert bench("--home", str(tmp_path), "--encoders-file", "/dev/zero", "list", "encoders") == 2  # reading it would never end
    error = " ".join(capsys.readouterr().err.split())
    assert "not a regular file" in error and "Traceback" not in error


def test_an_oversized_encoders_file_is_refused(tmp_path: Path, capsys) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * (custom.MAX_FILE_BYTES // 10 + 1))
    assert bench("--home", str(tmp_path), "--encoders-file", str(big), "list", "encoders") == 2
    assert "bytes, over the" in " ".join(capsys.readouterr().err.split())


@pytest.mark.parametrize("members", [{"loop1": ["loop1"]}, {"loop1": ["loop2"], "loop2": ["offline", "loop1"]},
                                     {"loop1": ["loop2"], "loop2": ["loop3"], "loop3": ["loop2"]}])
def test_a_set_that_includes_itself_is_one_line(members: dict[str, list[str]], tmp_path: Path, capsys) -> None:
    path = tmp_path / "sets.toml"
    path.write_text("".join(f'[[set]]\nname = "{name}"\nencoders = {listed!r}\n'.replace("'", '"') for name, listed in members.items()))
    try:
        assert bench("--home", str(tmp_path), "--encoders-file", str(path), "list", "encoders", "--set", "loop1") == 2
    finally:
        for name in members:
            SETS.pop(name, None)
    error = " ".join(capsys.readouterr().err.split())
    assert "includes itself" in error and "Traceback" not in error and "RecursionError" not in error
    assert not set(members) & set(SETS)  # nothing registered from a refused file


def test_a_checkpoint_is_known_by_its_checksum_not_its_path(tmp_path: Path) -> None:
    spec = encoders.get("timm/resnet50.a1_in1k")
    first = tmp_path / "a" / "model.pt"
    first.parent.mkdir()
    first.write_bytes(b"the same weights" * 100)
    copy = tmp_path / "b" / "renamed.pt"
    copy.parent.mkdir()
    shutil.copy(first, copy)
    other = tmp_path / "other.pt"
    other.write_bytes(b"other weights" * 100)
    made = {name: fingerprint(custom.with_weights(spec, path)) for name, path in (("first", first), ("copy", copy), ("other", other))}
    assert made["first"] == made["copy"]
    assert made["first"] != made["other"]
    assert str(first) not in repr(made["first"])
