"""Random command lines against a tiny home: every verb and option the parser has, with values
drawn from what people type by mistake (odd numbers, long names, devices, links, folders, files
of the wrong kind). Whatever comes in, `python -m bench` ends with exit 0 or 2, never a
traceback, writes nothing outside the home but the --out file asked for, and leaves the home's
cells as they were. Work that would embed images or measure is stopped where it would start (the
inputs were accepted), so the budget goes to inputs. BENCH_FUZZ_EXAMPLES raises the budget."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import __main__ as cli
from bench import encoders
from bench.extraction import estimate
from tests.test_home_boundary import RANDOM, _table, snapshot, tiny_home

EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "80"))


class WorkStarted(Exception):
    """The inputs were accepted and real work (embedding, measuring an audit) was about to start."""


def _stop(*arguments: Any, **options: Any) -> None:
    raise WorkStarted


def _verbs() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (action,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(action.choices)


VERBS = _verbs()
NAMES = ["demo-mini", "demo", "patches", "imagefolder", "cameras", "hf:nowhere/none", "hf:", "knn-influence", "paircams",
         "similarity", "probe-processing", RANDOM, "effnet/lite0.in1k", "paper", "offline", "nope/none", "results",
         "superseded", "rejects", "latest", ".", "..", "a/b", "~", "-", "x" * 300, "é€🙂", "label = 1", "label = 1) OR (1=1",
         "processing = 'jpeg95_444'", "", " ", ",", "jpeg", "sharpening", "jpeg95_444,original", "train", "val,test",
         "0", "1", "-1", "3", "nan", "inf", "-inf", "1e308", "0.5", "99999999999999999999", "true", "none", "build",
         "file:///etc/passwd", "http://[::1", "javascript:alert(1)", "cuda", "cpu", "auto", "fp32", "bf16", "local", "ray",
         "train=train,val=validation", "val=", "Make", "make", "iso"]


def _places(tmp: Path, home: Path) -> list[str]:
    """Paths of every kind: inside and outside the home, devices, folders, links, missing ones."""
    return [str(home), str(home / "reports"), str(home / "out.csv"), str(home / "missing" / "out.csv"), str(tmp / "outside"),
            str(tmp / "outside" / "note.txt"), str(tmp / "outside" / "photo.png"), str(tmp / "outside" / "encoders.toml"),
            str(tmp / "outside" / "loop.toml"), str(tmp / "outside" / "binary.pt"), str(tmp / "dangling"), "/dev/null",
            "/dev/zero", "/dev/full", "/proc/self/status", str(tmp / "nowhere"), "relative/path", "", "x" * 300,
            str(home / ("x" * 300)), str(tmp / "outside" / "é€🙂.csv")]


def _outside(tmp: Path) -> None:
    folder = tmp / "outside"
    (folder / "class" / "sub").mkdir(parents=True)
    (folder / "note.txt").write_text("not an image")
    from PIL import Image

    Image.new("RGB", (20, 16), (200, 10, 10)).save(folder / "photo.png")
    Image.new("RGB", (20, 16), (10, 10, 200)).save(folder / "class" / "sub" / "b.png")
    (folder / "encoders.toml").write_text('[[set]]\nname = "fuzzset"\nencoders = ["offline"]\n')
    (folder / "loop.toml").write_text('[[set]]\nname = "fuzzloop"\nencoders = ["fuzzloop2"]\n[[set]]\nname = "fuzzloop2"\nencoders = ["fuzzloop"]\n')
    (folder / "binary.pt").write_bytes(bytes(range(256)) * 8)
    (tmp / "dangling").symlink_to(tmp / "missing-target" / "file")


def _options(verb: str) -> list[argparse.Action]:
    return [action for action in VERBS[verb]._actions if action.option_strings and action.dest != "help"]


def _positionals(verb: str) -> list[argparse.Action]:
    return [action for action in VERBS[verb]._actions if not action.option_strings]


LIKELY = {  # what an option usually gets, by its destination: most values should pass the parser and reach bench
    "dataset": ["demo-mini", "imagefolder", "cameras", "hf:nowhere/none", "paircams", "patches", "demo-mni"],
    "encoders": [RANDOM, "paper", "offline", "fuzzset", "fuzzloop", f"{RANDOM},nope/none", "effnet/lite0.in1k"],
    "encoder": [RANDOM, "effnet/lite0.in1k", "nope/none"],
    "task": ["knn-influence", "similarity", "paircams", "masking", "probe-processing", "knn-influnce"],
    "processings": ["original", "jpeg95_444,original", "nope"], "group": ["jpeg", "sharpening", "nope"], "splits": ["val", "train,val", "test"],
    "where": ["label = 1", "processing = 'original'", "label = 1) OR (1=1", "nope = 3", "label = 1; drop"],
    "name": ["mine", "results", "superseded", "..", "a/b", "x" * 300, "latest"],
    "columns": ["image_id,label", "nope", "vector"],
}
PATH_OPTIONS = {"root", "out", "like", "weights", "encoders_file", "groups", "source"}


@st.composite
def command_lines(draw: st.DrawFn, places: list[str]) -> list[str]:
    """A verb, its positionals, its required options and a few more, each value likely, odd or hostile."""
    verb = draw(st.sampled_from(sorted(VERBS)))
    anything = st.one_of(st.sampled_from(NAMES), st.sampled_from(places), st.text(max_size=12),
                         st.integers(-3, 10**6).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr))

    def value(action: argparse.Action) -> str:
        usual = list(action.choices) if action.choices else LIKELY.get(action.dest.removeprefix("task_"), [])
        if action.dest in PATH_OPTIONS:
            usual = places
        elif action.type in (int, float) or getattr(action.type, "__name__", "") in ("positive_int", "non_negative_int", "seconds"):
            usual = ["1", "2", "0", "-1", "nan", "inf", "1e9", "3.5"]
        return draw(st.sampled_from(usual)) if usual and draw(st.integers(0, 3)) else draw(anything)

    argv: list[str] = [verb]
    for action in _positionals(verb):
        argv.append(value(action))
    required = [action for action in _options(verb) if action.required]
    for action in required + draw(st.lists(st.sampled_from(_options(verb)), max_size=5, unique_by=lambda action: action.dest)):
        argv.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            argv.append(value(action))
    return argv


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str, str]:
    registered = (dict(encoders.ENCODERS), dict(encoders.SETS))
    try:
        code: int | str = cli.main(argv)
    except SystemExit as stopped:  # argparse's refusals and --help
        code = stopped.code if isinstance(stopped.code, int) else 2
    except WorkStarted:
        code = "work"
    finally:
        for registry, before in zip((encoders.ENCODERS, encoders.SETS), registered):
            registry.clear()
            registry.update(before)
    return code, capsys.readouterr().err


def test_random_command_lines_end_in_exit_0_or_2_and_stay_in_the_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    home = tmp_path / "home"
    cell = tiny_home(home)
    _table(home)
    _outside(tmp_path)
    places = _places(tmp_path, home)
    monkeypatch.setenv("COLUMNS", "160")
    monkeypatch.chdir(tmp_path / "outside")  # relative paths land outside the home: they must not be written
    import bench.audit.command
    import bench.extraction

    monkeypatch.setattr(bench.extraction, "extract", _stop)
    monkeypatch.setattr(bench.audit.command, "measure", _stop)
    cell_bytes = cell.read_bytes()
    around = {name: value for name, value in snapshot(tmp_path).items() if not name.startswith("home")}
    tried: list[tuple[str, int | str, bool]] = []  # verb, exit, refused by the parser

    @settings(max_examples=EXAMPLES, deadline=None, derandomize="BENCH_FUZZ_EXAMPLES" not in os.environ, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(command_lines(places))
    def check(argv: list[str]) -> None:
        with estimate.network_closed():  # nothing may wait on the network
            code, error = _run(["--home", str(home), *argv], capsys)
        tried.append((argv[0], code, "usage:" in error))
        assert code in (0, 2, "work"), (argv, code, error[-2000:])
        assert "Traceback" not in error, (argv, error[-2000:])
        assert cell.read_bytes() == cell_bytes, argv
        asked = {str(Path(argv[at + 1]).resolve()) for at, word in enumerate(argv[:-1]) if word == "--out"}
        now = {name: value for name, value in snapshot(tmp_path).items() if not name.startswith("home")}
        changed = {name for name in set(now) | set(around) if now.get(name) != around.get(name)}
        assert {name for name in changed if str((tmp_path / name).resolve()) not in asked} == set(), (argv, sorted(changed))
        around.update({name: now[name] for name in changed if name in now})  # an --out file asked for stays as written

    check()
    assert len(tried) >= min(EXAMPLES, 20)
    if "BENCH_FUZZ_EXAMPLES" in os.environ:  # a long run says what it reached
        from collections import Counter

        print(Counter((verb, code, "argparse" if parsed else "bench") for verb, code, parsed in tried).most_common())
