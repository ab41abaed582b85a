"""Encoders at an intermediate block (`NAME@blockN`): naming and refusal, the pooled vector against
timm's own blocks, the last block against the final embedding, one fingerprint per depth, several
depths from one pass, and the depth view from synthetic cells."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from bench import data, encoders, extraction
from bench.boards import Board
from bench.report.leaderboard import Mark
from bench.encoders import depth, trunk
from bench.encoders.spec import EncoderSpec
from bench.extraction.fingerprint import fingerprint
from bench.naming import encoder_slug
from bench.registry import UnknownNameError
from bench.report import depth as depth_view
from bench.report.plots import pyplot
from bench.results import Cell, CellKey
from bench.store import Store, table_name
from bench.tasks import TASKS

RANDOM = "effnet/lite0.random"
TINY_VIT = EncoderSpec(name="test/vit-tiny.random", family="sup", loader="timm_random", architecture="vit_tiny_patch16_224",
                       pretrained="", input_size=32, embed_dim=192, options=(("img_size", 32),))


def _images(count: int = 2, size: int = 224) -> torch.Tensor:
    return torch.randn(count, 3, size, size, generator=torch.Generator().manual_seed(7))


def _hooked(model: torch.nn.Module, module: str, images: torch.Tensor) -> torch.Tensor:
    """The output of `module` when `model` runs on `images`, caught by a forward hook."""
    caught: list[torch.Tensor] = []
    handle = model.get_submodule(module).register_forward_hook(lambda _m, _i, output: caught.append(output))
    with torch.no_grad():
        model(images)
    handle.remove()
    return caught[0]


def _timm_random(spec: EncoderSpec) -> torch.nn.Module:
    import timm

    torch.manual_seed(spec.init_seed)
    return timm.create_model(spec.architecture, pretrained=False, num_classes=0, **dict(spec.options)).eval()


def test_depth_names_parse_expand_and_refuse_with_the_valid_depths() -> None:
    spec = encoders.get(f"{RANDOM}@block3")
    assert (spec.name, spec.block, spec.embed_dim) == (f"{RANDOM}@block3", 3, 40)
    assert "blocks.2" in spec.pooling and "global average pool" in spec.pooling
    assert encoders.expand([f"{RANDOM}@blocks"]) == tuple(f"{RANDOM}@block{n}" for n in range(1, 8))
    assert encoders.expand(["offline@blocks"]) == tuple(f"{name}@block{n}" for name in ("effnet/lite0.in1k", RANDOM) for n in range(1, 8))
    for wrong in ("@block0", "@block8", "@layer2", "@"):
        with pytest.raises(UnknownNameError, match="@block1 to @block7"):
            encoders.get(f"{RANDOM}{wrong}")
    with pytest.raises(UnknownNameError, match="unknown encoder"):
        encoders.get("effnet/lite9.in1k@block2")
    with pytest.raises(UnknownNameError, match="no intermediate outputs"):
        encoders.get("dino/resnet50@block1")
    assert "@" not in table_name("patches", spec.name) and encoder_slug(spec.name) == "effnet--lite0.random--block3"


def test_pooled_block_equals_the_models_own_block_output_pooled() -> None:
    images = _images()
    reference = _timm_random(encoders.get(RANDOM))
    for block in (1, 4, 7):
        loaded = encoders.load(encoders.get(f"{RANDOM}@block{block}"))
        with torch.no_grad():
            ours = loaded.model(images)
        expected = _hooked(reference, f"blocks.{block - 1}", images).mean(dim=(2, 3))
        assert torch.allclose(ours, expected, atol=1e-5, rtol=1e-5), block
    # a ViT: the mean of block N's patch tokens (the class token left out)
    vit = _timm_random(TINY_VIT)
    small = _images(size=32)
    for block in (1, 12):
        loaded = encoders.load(depth.at(TINY_VIT, f"block{block}"))
        with torch.no_grad():
            ours = loaded.model(small)
        tokens = _hooked(vit, f"blocks.{block - 1}", small)
        assert ours.shape == (2, 192) and "patch tokens" in loaded.spec.pooling
        assert torch.allclose(ours, tokens[:, vit.num_prefix_tokens:].mean(dim=1), atol=1e-5, rtol=1e-5), block
        assert not torch.allclose(ours, tokens.mean(dim=1), atol=1e-4)  # the class token is not averaged in


def test_the_last_block_is_the_map_the_final_embedding_is_pooled_from() -> None:
    """EfficientNet's embedding is global-average-pool(ReLU6(BN(1x1 conv(block 7's map)))). So the
    head applied to block 7's map reproduces the final vector, @block7 is that map's pool, and,
    the conv and BN being affine, head-without-ReLU6 of the @block7 vector is the pooled
    pre-activation of the head."""
    images = _images()
    final = encoders.load(encoders.get(RANDOM)).model
    last = encoders.load(encoders.get(f"{RANDOM}@block7")).model
    network = last.network
    with torch.no_grad():
        block_map = network.forward_intermediates(images, indices=[7], extra_blocks=True, intermediates_only=True)[0]
        embedding = final(images)
        pooled = last(images)
        head = network.bn2(network.conv_head(block_map)).mean(dim=(2, 3))
        bn = network.bn2
        pre_activation = torch.nn.functional.batch_norm(network.conv_head(block_map), bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                                        False, 0.0, bn.eps).mean(dim=(2, 3))
        from_pooled = torch.nn.functional.batch_norm(network.conv_head(pooled[:, :, None, None]), bn.running_mean, bn.running_var,
                                                     bn.weight, bn.bias, False, 0.0, bn.eps)[:, :, 0, 0]
    assert pooled.shape == (2, 320) and embedding.shape == (2, 1280)
    assert torch.allclose(head, embedding, atol=1e-5, rtol=1e-5)
    assert torch.allclose(pooled, block_map.mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(from_pooled, pre_activation, atol=1e-4, rtol=1e-4)


def test_each_depth_has_its_own_fingerprint_and_the_final_ones_is_unchanged() -> None:
    base = encoders.get(RANDOM)
    prints = [fingerprint(encoders.get(f"{RANDOM}@block{n}")) for n in (2, 3)] + [fingerprint(base)]
    assert prints[0] != prints[1] != prints[2] != prints[0]
    assert prints[0]["encoder"]["block"] == 2 and "pooling" in prints[0]["encoder"]
    assert "block" not in prints[2]["encoder"]  # tables of final embeddings made before depths existed still match
    assert prints[0]["weights"] == prints[2]["weights"]


def test_several_depths_are_stored_from_one_pass_of_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original = trunk.reader

    def counting(network: torch.nn.Module, name: str) -> trunk.Reader:
        found = original(network, name)
        return dataclasses.replace(found, call=lambda images: calls.append(len(images)) or found.call(images))

    names = [f"{RANDOM}@block{n}" for n in (2, 5, 7)]
    specs = [encoders.get(name) for name in names]  # naming a depth may read the blocks' widths once: not the pass counted here
    monkeypatch.setattr(trunk, "reader", counting)
    dataset = data.resolve("demo-mini")
    dataset = dataclasses.replace(dataset, listing=data.Listing([r for r in dataset.listing.records if r.split == "val"][:3]))
    store = Store(tmp_path / "home")
    summaries = extraction.extract(dataset, specs, ("jpeg75_420", "mask50"), store, splits=("val",),
                                   console=Console(quiet=True))
    assert {name: summary.rows_written for name, summary in summaries.items()} == dict.fromkeys(names, 6)
    assert sum(calls) == 6  # each item ran through the network once, for three depths
    reference = _timm_random(encoders.get(RANDOM))
    stored = {name: store.split_vectors(dataset.key, name, "val", ["jpeg75_420"]) for name in names}
    dims = {name: vectors.vectors["jpeg75_420"].shape[1] for name, vectors in stored.items()}
    assert dims == {names[0]: 24, names[1]: 112, names[2]: 320}
    # the stored block-5 vector of the first image is timm's block 5, pooled, on the prepared pixels
    from bench.extraction.embed import Embedder
    from bench.extraction.prepare import input_shape_of, prepare
    from bench import processing

    record = next(r for r in dataset.listing.records if r.image_id == stored[names[1]].image_ids[0])
    view = input_shape_of(encoders.get(RANDOM))
    pixels = prepare(record, processing.get("jpeg75_420"), [view]).pixels[view][None]
    inputs = Embedder(encoders.load(encoders.get(RANDOM)), torch.device("cpu")).inputs(pixels)
    expected = _hooked(reference, "blocks.4", inputs).mean(dim=(2, 3))[0].numpy()
    assert np.allclose(stored[names[1]].vectors["jpeg75_420"][0], expected, atol=1e-5)


def _cell(encoder: str, gap: float, low: float, high: float) -> Cell:
    return Cell(CellKey("knn-influence", "patches", encoder, "group=jpeg,k=10,seeds=1"), "sup",
                metrics={"gap_pos_minus_neg": gap, "knn_acc1.all_same": 50.0, "chance": 5.0},
                intervals={"gap_pos_minus_neg": (low, high)})


def test_the_depth_view_builds_from_synthetic_cells(tmp_path: Path) -> None:
    cells = (
        _cell("a/net.x@block1", 0.5, -1.0, 2.0), _cell("a/net.x@block2", 4.0, 2.0, 6.0), _cell("a/net.x@block3", 9.0, 7.0, 11.0),
        _cell("a/net.x", 6.0, 5.0, 7.0), _cell("b/net.y@block2", -3.0, -5.0, -1.0), _cell("b/net.y@block1", 0.0, -0.5, 0.5),
        _cell("c/lonely@block1", 1.0, 0.0, 2.0), _cell("d/plain", 1.0, 0.5, 1.5),
    )
    board = Board(TASKS["knn-influence"], "patches", "group=jpeg,k=10,seeds=1", cells)
    marked = {"a/net.x@block2", "a/net.x@block3", "b/net.y@block2"}  # the board's marks, as leaderboard.board_marks gives them
    tested = {(cell.encoder, "gap_pos_minus_neg"): Mark(0.01, 0.02, cell.encoder in marked) for cell in cells if cell.encoder != "a/net.x"}
    found = depth_view.series(board, None, tested)
    assert [s.base for s in found] == ["a/net.x", "b/net.y"]  # one depth alone or no depth draws no series
    a, b = found
    assert [p.block for p in a.points] == [1, 2, 3, None] and [p.value for p in a.points] == [0.5, 4.0, 9.0, 6.0]
    assert [p.marked for p in a.points] == [False, True, True, None]  # the final cell holds no test here
    assert [p.block for p in b.points] == [1, 2] and [p.marked for p in b.points] == [False, True]
    header, rows, note = depth_view.rows(board, found)
    assert header == ["encoder", "block1", "block2", "block3", "final"]
    assert rows[0][2] == "4.00 [2.00, 6.00]*" and rows[0][1] == "0.50 [-1.00, 2.00]" and rows[1][3] == "" and "pos−neg" in note
    folder = tmp_path / "report"
    folder.mkdir()
    sections = depth_view.sections([board], folder, pyplot(), lambda _board: tested)
    assert len(sections) == 1 and len(sections[0].figures) == 1
    assert [m.path for m in depth_view.measures(board)] == ["gap_pos_minus_neg", "knn_acc1.all_same"]  # the effect, then semantics
    with Image.open(folder / sections[0].figures[0].file) as image:
        assert image.size[0] > 300
    console = Console(record=True, width=200)
    assert depth_view.show([board], console, marks=lambda _board: tested) == 1
    printed = console.export_text()
    assert "a/net.x" in printed and "9.00 [7.00, 11.00]*" in printed
    assert '"depth": "final"' in depth_view.export(depth_view.boards_with_depths([board]), "json")
    empty = Console(record=True)
    assert depth_view.show([Board(TASKS["knn-influence"], "patches", "c", (_cell("d/plain", 1.0, 0.5, 1.5),))], empty) == 0
    assert "No depth view" in empty.export_text()


def test_the_ray_engine_gives_the_depths_of_one_encoder_one_actor_pool() -> None:
    from types import SimpleNamespace

    from bench.extraction.distributed import shared_pools

    names = [f"{RANDOM}@block2", "effnet/lite0.in1k@block1", f"{RANDOM}@block5", RANDOM, "effnet/lite0.in1k"]
    fake = [SimpleNamespace(spec=SimpleNamespace(name=name)) for name in names]
    pools = [[encoding.spec.name for encoding in pool] for pool in shared_pools(fake)]  # type: ignore[arg-type]
    assert pools == [[f"{RANDOM}@block2", f"{RANDOM}@block5", RANDOM], ["effnet/lite0.in1k@block1", "effnet/lite0.in1k"]]


def test_the_ray_layout_for_gpus_stores_the_depths_the_local_engine_stores(tmp_path: Path) -> None:
    """Prepare tasks feeding one actor pool for both depths (run here with CPU actors)."""
    pytest.importorskip("ray", reason="the Ray engine needs the ray extra (pip install -e '.[ray]')")
    from bench.extraction import distributed
    from bench.extraction.engine import drive
    from bench.extraction.plan import make_plan
    from bench.extraction.settings import ExtractionSettings
    from bench.extraction.summary import ExtractionSummary

    dataset = data.resolve("demo-mini")
    dataset = dataclasses.replace(dataset, listing=data.Listing([r for r in dataset.listing.records if r.split == "val"][:4]))
    specs = [encoders.get(f"{RANDOM}@block{n}") for n in (2, 5)]
    staged, local = Store(tmp_path / "staged"), Store(tmp_path / "local")
    plan = make_plan(dataset, specs, ("jpeg75_420",), staged, splits=("val",))
    summaries = {spec.name: ExtractionSummary(plan.dataset, spec.name) for spec in specs}
    settings = ExtractionSettings(device="cpu", batch_size=2, commit_seconds=0)
    drive(plan, distributed.RayEngine(plan, settings, staged, staged=True), staged, settings, summaries, Console(quiet=True))
    extraction.extract(dataset, specs, ("jpeg75_420",), local, splits=("val",), console=Console(quiet=True))
    for spec in specs:
        assert summaries[spec.name].rows_written == 4
        mine, theirs = (store.split_vectors(dataset.key, spec.name, "val", ["jpeg75_420"]) for store in (staged, local))
        assert list(mine.image_ids) == list(theirs.image_ids)
        assert np.abs(mine.vectors["jpeg75_420"] - theirs.vectors["jpeg75_420"]).max() <= 1e-5
