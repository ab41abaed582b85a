"""The encoder zoo: every paper spec builds with its declared shapes, custom and local weights load
exactly, and missing or broken weights fail fast with a message that says what to do."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import open_clip
import pytest
import timm
import torch

from bench import data, processing
from bench.encoders.catalog import ENCODERS, OFFLINE_ENCODERS, PAPER_ENCODERS, get
from bench.encoders.custom import EncodersFileError, read_file, register_file, with_weights
from bench.encoders.loaders import architecture, available_offline, load, weights_identity
from bench.encoders.preprocess import paper_preprocess
from bench.encoders.spec import HALF, OPENAI_MEAN, OPENAI_STD, EncoderSpec, WeightsUnavailableError
from bench.store import Store
from tests.conftest import run_bench

DATASET = "demo-mini"
OP = "jpeg95_444"
ARCH = "test_resnet"  # timm's tiny test ResNet: a real network that runs at any input size
CUSTOM = "mine/test_resnet.local"
CUSTOM_SIZE = 64
CUSTOM_DIM = 96
VAL_IMAGES = 11 * 2  # demo-mini: classes x val crops
CORRUPTIONS = ("truncated", "wrong-keys", "wrong-shape")


def _unwrapped(text: str) -> str:
    """Text without whitespace, so that paths survive Rich's line wrapping of stderr."""
    return "".join(text.split())


def _sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _save_random_model(path: Path, seed: int) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = timm.create_model(ARCH, pretrained=False, num_classes=0)
    torch.save(model.state_dict(), path)
    return path


def _saved_model(path: Path) -> torch.nn.Module:
    model = timm.create_model(ARCH, pretrained=False, num_classes=0)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _entry(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": CUSTOM, "family": "sup", "loader": "timm", "architecture": ARCH, "weights": "model.pt",
        "input_size": CUSTOM_SIZE, "embed_dim": CUSTOM_DIM, "mean": list(HALF), "std": list(HALF),
    }
    entry.update(overrides)
    return {key: value for key, value in entry.items() if value is not None}


def _write_encoders_file(path: Path, *entries: dict[str, Any]) -> Path:
    tables = ["[[encoder]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in entry.items()) for entry in entries]
    path.write_text("\n".join(tables), encoding="utf-8")
    return path


def _corrupt(kind: str, checkpoint: Path, folder: Path) -> Path:
    path = folder / f"{kind}.pt"
    if kind == "truncated":
        whole = checkpoint.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])
        return path
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if kind == "wrong-keys":
        state = {f"encoder.{key}": tensor for key, tensor in state.items()}
    else:
        key = next(key for key, tensor in state.items() if tensor.ndim == 4)
        state[key] = torch.zeros(state[key].shape[0] + 1, *state[key].shape[1:])
    torch.save(state, path)
    return path


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A randomly initialised timm test_resnet saved as a plain state_dict."""
    return _save_random_model(tmp_path / "model.pt", seed=7)


@pytest.fixture
def encoders_file(tmp_path: Path, checkpoint: Path) -> Path:
    """An --encoders-file declaring the saved test_resnet, weights given relative to the file."""
    return _write_encoders_file(tmp_path / "encoders.toml", _entry(weights=checkpoint.name))


@pytest.fixture
def custom_spec(encoders_file: Path) -> EncoderSpec:
    return read_file(encoders_file)[0]


@pytest.fixture
def restored_registry() -> Iterator[dict[str, EncoderSpec]]:
    """The global encoder registry, put back exactly as it was after the test."""
    before = dict(ENCODERS)
    yield ENCODERS
    ENCODERS.clear()
    ENCODERS.update(before)


# ---- CLI runs --------------------------------------------------------------------------------------
# Each `python -m bench` spends most of its seconds importing torch, torchvision and LanceDB, so the
# runs the selected tests need all start in the background when the module starts, and the tests
# that check them come last.

ABSENT = "timm/resnet50.a1_in1k"


def _cli_arguments(label: str, folder: Path) -> tuple[str, ...]:
    extract = ("extract", "--dataset", DATASET, "--processings", OP, "--splits", "val")
    custom = ("--encoders-file", str(folder / "encoders.toml"), *extract, "--encoder", CUSTOM)
    return {
        "custom-extract": custom,
        "truncated-weights": (*custom, "--weights", str(folder / "truncated.pt")),
        "absent-weights": (*extract, "--encoder", ABSENT),
        "list-encoders": ("list", "encoders"),
    }[label]


class BackgroundCli:
    """`run_bench` calls running in threads, each in its own home under one folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.runs: dict[str, Future[subprocess.CompletedProcess[str]]] = {}

    def start(self, label: str) -> None:
        if label not in self.runs:
            self.runs[label] = self.pool.submit(run_bench, self.folder / label, *_cli_arguments(label, self.folder))

    def result(self, label: str) -> subprocess.CompletedProcess[str]:
        self.start(label)
        return self.runs[label].result()


@dataclass(frozen=True)
class CliRun:
    folder: Path  # holds model.pt, encoders.toml and truncated.pt
    home: Path
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module", autouse=True)
def background_cli(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundCli]:
    """Starts the CLI run of every selected test of this module at once."""
    folder = tmp_path_factory.mktemp("cli")
    checkpoint = _save_random_model(folder / "model.pt", seed=7)
    _write_encoders_file(folder / "encoders.toml", _entry(weights=checkpoint.name))
    _corrupt("truncated", checkpoint, folder)
    runs = BackgroundCli(folder)
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec is not None and "cli_run" in callspec.params:
            runs.start(callspec.params["cli_run"])
    yield runs
    runs.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def cli_run(request: pytest.FixtureRequest, background_cli: BackgroundCli) -> CliRun:
    """The finished CLI run named by the test's indirect parameter."""
    label: str = request.param
    return CliRun(folder=background_cli.folder, home=background_cli.folder / label, done=background_cli.result(label))


# ---- the 47 paper encoders ----------------------------------------------------------------------

@pytest.mark.parametrize("spec", PAPER_ENCODERS, ids=lambda spec: spec.name)
def test_paper_encoder_maps_its_input_size_to_its_embedding_size_on_meta(spec: EncoderSpec) -> None:
    """The architecture of each paper encoder turns a (2, 3, S, S) batch into (2, embed_dim) without allocating memory."""
    with torch.device("meta"):
        model = architecture(spec).eval()
        with torch.inference_mode():
            output = model(torch.empty(2, 3, spec.input_size, spec.input_size))
    assert all(parameter.device.type == "meta" for parameter in model.parameters())
    assert output.device.type == "meta"
    assert tuple(output.shape) == (2, spec.embed_dim)


def test_catalogue_counts_and_pinned_tags_follow_the_protocol() -> None:
    """47 unique paper encoders, 24 CVL / 11 SUP / 12 SSL, every hub spec pinned to a tag its library knows."""
    names = [spec.name for spec in PAPER_ENCODERS]
    assert len(names) == 47 and len(set(names)) == 47
    assert Counter(spec.family for spec in PAPER_ENCODERS) == {"cvl": 24, "sup": 11, "ssl": 12}
    assert set(ENCODERS) >= {*names, *(spec.name for spec in OFFLINE_ENCODERS)}
    timm_specs = [spec for spec in PAPER_ENCODERS if spec.loader == "timm"]
    assert len(timm_specs) == 23
    for spec in timm_specs:
        assert spec.pretrained, spec.name
        assert timm.list_pretrained(f"{spec.architecture}.{spec.pretrained}") == [f"{spec.architecture}.{spec.pretrained}"], spec.name
    for spec in (spec for spec in PAPER_ENCODERS if spec.loader == "open_clip"):
        assert spec.pretrained in open_clip.list_pretrained_tags_by_model(spec.architecture), spec.name
    for spec in (spec for spec in PAPER_ENCODERS if spec.loader == "checkpoint_url"):
        assert spec.url.startswith("https://dl.fbaipublicfiles.com/") and spec.pretrained, spec.name


def test_catalogue_preprocessing_facts_from_protocol_section_2() -> None:
    """Per-encoder resolution, interpolation and normalisation match docs/protocol.md#encoders-and-preprocessing."""
    laion_l14 = get("openclip/vit-l-14.laion2b_s32b_b82k")
    assert laion_l14.mean == HALF and laion_l14.std == HALF
    other_openclip = [spec for spec in PAPER_ENCODERS if spec.name.startswith("openclip/") and spec is not laion_l14]
    assert len(other_openclip) == 10
    assert all(spec.mean == OPENAI_MEAN and spec.std == OPENAI_STD for spec in other_openclip)

    mocov3 = [spec for spec in PAPER_ENCODERS if spec.name.startswith("mocov3/")]
    assert len(mocov3) == 3 and all(spec.interpolation == "bilinear" for spec in mocov3)
    assert all(spec.interpolation == "bicubic" for spec in PAPER_ENCODERS if spec not in mocov3)

    dinov2 = [spec for spec in PAPER_ENCODERS if spec.name.startswith("dinov2/")]
    assert len(dinov2) == 4 and all(spec.input_size == 224 for spec in dinov2)
    convnext = [spec for spec in PAPER_ENCODERS if spec.name.startswith("timm/convnext_")]
    assert len(convnext) == 4 and all(spec.input_size == 384 for spec in convnext)
    siglip = [spec for spec in PAPER_ENCODERS if spec.name.startswith(("siglip/", "siglip2/"))]
    assert len(siglip) == 4
    assert all(spec.input_size == 256 and spec.mean == HALF and spec.std == HALF for spec in siglip)


@pytest.mark.parametrize("name", ["dino/vits16", "mocov3/resnet50"])
def test_small_paper_encoder_embeds_a_real_batch_with_random_weights(name: str) -> None:
    """Instantiated on the CPU, the architecture gives finite, image-dependent (2, embed_dim) embeddings."""
    spec = get(name)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = architecture(spec).eval()
        batch = torch.randn(2, 3, spec.input_size, spec.input_size)
    with torch.inference_mode():
        output = model(batch)
    assert output.shape == (2, spec.embed_dim)
    assert torch.isfinite(output).all()
    assert not torch.allclose(output[0], output[1])


# ---- custom encoders and --weights ------------------------------------------------------------

def test_registered_custom_encoder_resolves_weights_next_to_its_file(
    encoders_file: Path, checkpoint: Path, restored_registry: dict[str, EncoderSpec]
) -> None:
    """register_file makes the declared encoder gettable, with its relative weights path resolved against the file."""
    (spec,) = register_file(encoders_file)
    assert get(CUSTOM) is spec
    assert spec.weights == str(checkpoint.resolve())
    assert (spec.family, spec.loader, spec.architecture, spec.pretrained) == ("sup", "timm", ARCH, "")
    assert (spec.input_size, spec.embed_dim, spec.mean, spec.std) == (CUSTOM_SIZE, CUSTOM_DIM, HALF, HALF)
    assert weights_identity(spec) == _sha256(checkpoint)
    assert available_offline(spec)


@pytest.mark.parametrize("name", ["timm/resnet50.a1_in1k", "openclip/vit-b-32.laion2b_s34b_b79k", "mocov3/vit-b"])
def test_weights_override_makes_the_identity_the_checksum_of_the_file(name: str, checkpoint: Path, tmp_path: Path) -> None:
    """with_weights replaces a hub tag or URL identity by the sha256 of the given file, and follows its contents."""
    spec = get(name)
    overridden = with_weights(spec, checkpoint)
    assert weights_identity(spec) in (f"{spec.loader}:{spec.architecture}:{spec.pretrained}", f"url:{spec.url}")
    assert overridden.weights == str(checkpoint.resolve())
    assert weights_identity(overridden) == _sha256(checkpoint)
    assert available_offline(overridden)
    other = _save_random_model(tmp_path / "other.pt", seed=8)
    assert weights_identity(with_weights(spec, other)) == _sha256(other) != _sha256(checkpoint)


def test_weights_override_loads_the_given_file(custom_spec: EncoderSpec, checkpoint: Path, tmp_path: Path) -> None:
    """Loading an overridden spec gives the file's tensors, not the declared checkpoint's."""
    other = _save_random_model(tmp_path / "other.pt", seed=8)
    loaded = load(with_weights(custom_spec, other))
    assert loaded.weights_id == _sha256(other)
    assert not loaded.model.training
    expected = torch.load(other, map_location="cpu", weights_only=True)
    declared = torch.load(checkpoint, map_location="cpu", weights_only=True)
    actual = loaded.model.state_dict()
    assert actual.keys() == expected.keys()
    for key, tensor in expected.items():
        torch.testing.assert_close(actual[key], tensor, rtol=0, atol=0, msg=key)
    assert any(not torch.equal(actual[key], declared[key]) for key in declared)


def test_weights_override_is_refused_for_encoders_without_a_checkpoint_file() -> None:
    """The packaged and random-init encoders take no --weights file."""
    for name in ("effnet/lite0.in1k", "effnet/lite0.random"):
        with pytest.raises(EncodersFileError, match="takes no checkpoint file"):
            with_weights(get(name), "model.pt")


# ---- missing and broken weights -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "where"),
    [
        ("openclip/vit-b-32.laion2b_s34b_b79k", "laion2b_s34b_b79k"),
        ("timm/resnet50.a1_in1k", "a1_in1k"),
        ("mocov3/vit-b", "https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/vit-b-300ep.pth.tar"),
    ],
)
def test_offline_load_of_absent_weights_fails_fast_and_says_how_to_supply_them(
    name: str, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With downloads off, load() raises WeightsUnavailableError without opening a connection (so at
    once, whatever the network does), naming the spec, its tag or URL, and --weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = get(name)
    if available_offline(spec):
        pytest.skip(f"the weights of {name} are cached on this machine")
    connections: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        connections.append(address)
        raise OSError("a test forbids connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(WeightsUnavailableError) as caught:
        load(spec)
    assert connections == []
    message = str(caught.value)
    assert name in message
    assert where in message.replace(name, "")
    assert "--weights" in message


@pytest.mark.parametrize("kind", CORRUPTIONS)
def test_corrupt_checkpoint_fails_naming_the_file_and_the_fault(
    kind: str, custom_spec: EncoderSpec, checkpoint: Path, tmp_path: Path
) -> None:
    """Truncated, mis-keyed and mis-shaped checkpoints raise WeightsUnavailableError naming the file and what is wrong."""
    broken = _corrupt(kind, checkpoint, tmp_path)
    with pytest.raises(WeightsUnavailableError) as caught:
        load(with_weights(custom_spec, broken))
    message = str(caught.value)
    assert str(broken.resolve()) in message
    assert CUSTOM in message
    expected = {
        "truncated": ["cannot read checkpoint", "is the file complete?"],
        "wrong-keys": ["missing keys", "unexpected keys", "encoder."],
        "wrong-shape": ["wrong shapes", "vs model"],
    }[kind]
    for fragment in expected:
        assert fragment in message


# ---- encoders-file validation -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("entry", "fragments"),
    [
        (_entry(colour="blue"), ["unknown field(s) colour"]),
        (_entry(embed_dim=None), ["missing field(s) embed_dim"]),
        (_entry(loader="torch_hub"), ["loader must be one of", "'torch_hub'"]),
        (_entry(family="weakly"), ["family must be one of cvl, ssl, sup", "'weakly'"]),
        (_entry(name="timm/resnet50.a1_in1k"), ["'timm/resnet50.a1_in1k' is already registered"]),
    ],
    ids=["unknown-field", "missing-field", "bad-loader", "bad-family", "built-in-name"],
)
def test_encoders_file_errors_name_the_file_and_the_problem(
    entry: dict[str, Any], fragments: list[str], tmp_path: Path, checkpoint: Path, restored_registry: dict[str, EncoderSpec]
) -> None:
    """A malformed or clashing entry raises EncodersFileError naming the file and the fault, and registers nothing."""
    before = dict(restored_registry)
    good = _entry(name="mine/test_resnet.other")
    path = _write_encoders_file(tmp_path / "encoders.toml", good, entry)
    with pytest.raises(EncodersFileError) as caught:
        register_file(path)
    message = str(caught.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    assert restored_registry == before
    assert restored_registry["timm/resnet50.a1_in1k"] is before["timm/resnet50.a1_in1k"]


# ---- the command line (runs started by background_cli) -------------------------------------------

@pytest.mark.parametrize("cli_run", ["custom-extract"], indirect=True)
def test_custom_encoder_extracted_by_the_cli_equals_the_saved_model(cli_run: CliRun) -> None:
    """`extract` with an --encoders-file stores exactly what the saved model gives on the processed, preprocessed images."""
    assert cli_run.done.returncode == 0, cli_run.done.stderr
    checkpoint, encoders_file = cli_run.folder / "model.pt", cli_run.folder / "encoders.toml"
    store = Store(cli_run.home / "embeddings")
    assert store.count(DATASET, CUSTOM) == VAL_IMAGES
    assert store.fingerprint(DATASET, CUSTOM)["weights"] == _sha256(checkpoint)
    table = store.scan(DATASET, CUSTOM, where=f"split = 'val' AND processing = '{OP}'", columns=["image_id", "vector"])
    stored = dict(zip(table.column("image_id").to_pylist(), np.asarray(table.column("vector").to_pylist(), dtype=np.float32)))

    spec = read_file(encoders_file)[0]
    preprocess = paper_preprocess(spec)
    op = processing.get(OP)
    records = [record for record in data.get(DATASET).list().records if record.split == "val"]
    batch = torch.stack([preprocess(processing.apply(op, record.load(), seed=0, image_id=record.image_id)) for record in records])
    with torch.inference_mode():
        expected = _saved_model(checkpoint)(batch).numpy()
    assert sorted(stored) == sorted(record.image_id for record in records)
    assert expected.shape == (VAL_IMAGES, CUSTOM_DIM)
    for record, vector in zip(records, expected):
        np.testing.assert_allclose(stored[record.image_id], vector, rtol=1e-5, atol=1e-5, err_msg=record.image_id)


@pytest.mark.parametrize("cli_run", ["absent-weights"], indirect=True)
def test_cli_extract_of_absent_weights_exits_2_without_a_table(cli_run: CliRun) -> None:
    """`extract` for an uncached hub encoder exits 2 with a reason naming the tag and --weights, and stores nothing."""
    if available_offline(get(ABSENT)):
        pytest.skip(f"the weights of {ABSENT} are cached on this machine")
    failed = cli_run.done
    assert failed.returncode == 2, failed.stderr
    assert "a1_in1k" in failed.stderr.replace(ABSENT, "")
    assert "--weights" in failed.stderr
    assert "Traceback" not in failed.stderr
    store = Store(cli_run.home / "embeddings")
    assert not store.has_table(DATASET, ABSENT)
    assert store.table_names() == []


@pytest.mark.parametrize("cli_run", ["truncated-weights"], indirect=True)
def test_cli_extract_with_a_truncated_weights_file_exits_2_without_a_table(cli_run: CliRun) -> None:
    """`extract --weights` with a truncated file exits 2, names the file, and leaves no table behind."""
    failed = cli_run.done
    assert failed.returncode == 2, failed.stderr
    assert _unwrapped(str((cli_run.folder / "truncated.pt").resolve())) in _unwrapped(failed.stderr)
    assert "Traceback" not in failed.stderr
    store = Store(cli_run.home / "embeddings")
    assert not store.has_table(DATASET, CUSTOM)
    assert store.table_names() == []


@pytest.mark.parametrize("cli_run", ["list-encoders"], indirect=True)
def test_list_encoders_shows_all_49_and_the_packaged_one_is_offline(cli_run: CliRun) -> None:
    """`list encoders` has one row per registered encoder, and effnet/lite0.in1k is usable offline now."""
    listed = cli_run.done
    assert listed.returncode == 0, listed.stderr
    rows: dict[str, list[str]] = {}
    for line in listed.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if len(cells) == 6 and cells[0] and cells[0] != "name":
            rows[cells[0]] = cells
    expected = [spec.name for spec in (*PAPER_ENCODERS, *OFFLINE_ENCODERS)]
    assert len(expected) == 49
    assert sorted(rows) == sorted(expected)
    assert rows["effnet/lite0.in1k"][5] == "yes"
    assert rows["effnet/lite0.random"][5] == "yes"


@pytest.mark.parametrize("name", ["clip/vit-b-16.openai", "clip/vit-b-32.openai", "clip/vit-l-14.openai", "clip/vit-l-14-336.openai"])
def test_openai_clip_vits_are_built_with_quickgelu(name: str) -> None:
    """OpenAI trained its CLIP ViTs with QuickGELU; open_clip's plain names build GELU unless told.
    The same builder serves the hub weights and a --weights file."""
    spec = get(name)
    with torch.device("meta"):
        model = architecture(spec)
    activations = {type(module).__name__ for module in model.modules() if "GELU" in type(module).__name__}
    assert activations == {"QuickGELU"}


def test_building_an_open_clip_architecture_does_not_warn_that_it_is_random(caplog: pytest.LogCaptureFixture) -> None:
    """bench builds the random network on purpose (shapes, timing, a checkpoint to load): open_clip's
    warning would read as a failure in a plan's output. Other warnings still pass."""
    import logging

    with caplog.at_level(logging.WARNING), torch.device("meta"):
        architecture(get("clip/vit-b-32.openai"))
    assert not [record for record in caplog.records if "pretrained" in record.getMessage()]
    logging.getLogger().warning("No pretrained weights loaded: a warning of someone else's, after the build")
    assert caplog.records and not logging.getLogger().filters
