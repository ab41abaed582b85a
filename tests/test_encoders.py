"""Encoder registry and loaders: real packaged weights classify correctly; the control is random."""

from __future__ import annotations

from pathlib import Path

import pytest
import skimage
import torch
from PIL import Image

from bench import encoders
from bench.encoders.loaders import packaged_effnet_classifier
from bench.encoders.spec import EncoderSpec
from bench.registry import UnknownNameError

ESPRESSO = 967  # ImageNet-1k class index


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.open(Path(skimage.__file__).parent / "data" / "coffee.png").convert("RGB")


def test_packaged_effnet_classifies_the_espresso_photo(coffee: Image.Image) -> None:
    spec = encoders.get("effnet/lite0.in1k")
    loaded = encoders.load(spec)
    classifier = packaged_effnet_classifier(spec).eval()
    batch = loaded.preprocess(coffee)[None]
    with torch.inference_mode():
        probabilities = classifier(batch).softmax(-1)[0]
        embedding = loaded.model(batch)
        pooled = classifier.forward_head(classifier.forward_features(batch), pre_logits=True)
    assert int(probabilities.argmax()) == ESPRESSO
    assert float(probabilities[ESPRESSO]) > 0.5
    assert embedding.shape == (1, spec.embed_dim)
    torch.testing.assert_close(embedding, pooled)
    assert loaded.weights_id.startswith("sha256:")


def test_random_control_is_seeded_and_not_the_real_weights(coffee: Image.Image) -> None:
    spec = encoders.get("effnet/lite0.random")
    first, second = encoders.load(spec), encoders.load(spec)
    real = encoders.load(encoders.get("effnet/lite0.in1k"))
    batch = first.preprocess(coffee)[None]
    with torch.inference_mode():
        a, b, c = first.model(batch), second.model(batch), real.model(batch)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    assert a.shape == (1, spec.embed_dim)


def test_loading_leaves_the_global_torch_rng_untouched() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    encoders.load(encoders.get("effnet/lite0.random"))
    torch.testing.assert_close(torch.rand(3), expected)


def test_paper_preprocessing_resizes_shorter_side_then_centre_crops() -> None:
    preprocess = encoders.load(encoders.get("effnet/lite0.random")).preprocess
    wide = Image.new("RGB", (640, 320))
    assert preprocess.geometry(wide).size == (224, 224)
    assert preprocess(wide).shape == (3, 224, 224)
    assert "Resize(size=224" in preprocess.describe()


def test_unknown_encoder_suggests_close_names() -> None:
    with pytest.raises(KeyError, match="effnet/lite0.in1k"):
        encoders.get("effnet/lite0.in1")


def test_spec_is_frozen_and_names_follow_family_arch_tag() -> None:
    for spec in encoders.ENCODERS.values():
        assert isinstance(spec, EncoderSpec)
        family, rest = spec.name.split("/")
        assert family and rest  # family/arch[.tag]
        assert spec.family in ("cvl", "ssl", "sup")
    with pytest.raises(AttributeError):
        encoders.get("effnet/lite0.in1k").input_size = 1  # type: ignore[misc]


def test_an_unknown_pretrained_tag_is_a_weights_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = dataclasses.replace(encoders.get("timm/resnet50.a1_in1k"), name="x/resnet50.typo", pretrained="a1_in1kk")
    with pytest.raises(encoders.WeightsUnavailableError, match="a1_in1kk"):
        encoders.load(spec)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('name = 5\nfamily = "sup"\nloader = "timm"\narchitecture = "resnet18"', "name must be a string"),
        ('name = "x/a.b"\nfamily = "sup"\nloader = "timm"\narchitecture = "resnet5o"', "no architecture 'resnet5o'"),
        ('name = "x/a.b"\nfamily = "sup"\nloader = "checkpoint_url"\narchitecture = "resnet50"', "no architecture 'resnet50'"),
        ('name = "x/a.b"\nfamily = "sup"\nloader = "timm"\narchitecture = "resnet18"\nmean = "abc"', "mean must be three numbers"),
        ('name = "x/a.b"\nfamily = "sup"\nloader = "timm"\narchitecture = "resnet18"\ninput_size = "224"', "input_size must be a whole number"),
    ],
)
def test_encoders_file_rejects_wrong_types_and_unknown_architectures(tmp_path: Path, entry: str, problem: str) -> None:
    from bench.encoders.custom import EncodersFileError, read_file

    path = tmp_path / "encoders.toml"
    sizes = "" if "input_size" in entry else "\ninput_size = 224"
    path.write_text(f'[[encoder]]\n{entry}{sizes}\nembed_dim = 512\npretrained = "tag"\n')
    with pytest.raises(EncodersFileError, match=problem) as caught:
        read_file(path)
    assert str(path) in str(caught.value)


def test_encoder_sets_expand_in_order_and_a_file_may_declare_its_own(tmp_path: Path) -> None:
    from bench.encoders import SETS, expand
    from bench.encoders.catalog import PAPER_ENCODERS
    from bench.encoders.custom import EncodersFileError, register_file

    paper = expand(["paper"])
    assert len(paper) == 47 and paper == tuple(spec.name for spec in PAPER_ENCODERS)
    assert paper[0] == "clip/vit-b-16.openai" and paper[-1] == "mocov3/resnet50"  # the paper's first and last
    assert [len(expand([family])) for family in ("cvl", "sup", "ssl")] == [24, 11, 12]
    assert expand(["effnet/lite0.random", "offline"]) == ("effnet/lite0.random", "effnet/lite0.in1k")  # each once, first place kept
    with pytest.raises(UnknownNameError, match="Did you mean: paper"):
        expand(["papr"])
    before = dict(SETS)
    try:
        path = tmp_path / "sets.toml"
        path.write_text('[[set]]\nname = "mine"\nencoders = ["offline", "dino/vits16"]\n', encoding="utf-8")
        register_file(path)
        assert expand(["mine"]) == ("effnet/lite0.in1k", "effnet/lite0.random", "dino/vits16")
        path.write_text('[[set]]\nname = "broken"\nencoders = ["dino/vits61"]\n', encoding="utf-8")
        with pytest.raises(EncodersFileError, match="broken.*dino/vits61"):
            register_file(path)
    finally:
        SETS.clear()
        SETS.update(before)


def test_list_encoders_of_a_set_in_its_order(tmp_path: Path) -> None:
    from tests.conftest import run_bench

    done = run_bench(tmp_path, "list", "encoders", "--set", "ssl")
    assert done.returncode == 0, done.stderr
    names = [line.split("│")[1].strip() for line in done.stdout.splitlines() if line.startswith("│") and "/" in line.split("│")[1]]
    assert names[:5] == ["dino/vits8", "dino/vits16", "dino/vitb8", "dino/vitb16", "dino/resnet50"] and len(names) == 12
