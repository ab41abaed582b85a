"""The offline `demo` dataset: each real photo shipped inside an installed package is a class,
each item a deterministic crop of it (datasets/demo.toml)."""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from PIL import Image

from bench.data.record import DatasetOptions, ImageRecord, Listing
from bench.errors import DataError
from bench.seeding import rng_for

DEMO_SEED = 0
TRAIN_PER_CLASS = 16  # sized so the default run takes minutes on 2 CPU cores
VAL_PER_CLASS = 6
CROP_FRACTION = (0.35, 0.6)  # crop side as a fraction of the photo's shorter side


def _package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, located without importing it (sklearn takes seconds)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return Path(f"<{package} is not installed>", *parts)
    return Path(spec.origin).parent.joinpath(*parts)


def _skimage(name: str) -> Path:
    return _package_file("skimage", "data", name)


def _sklearn(name: str) -> Path:
    return _package_file("sklearn", "datasets", "images", name)


def _matplotlib(name: str) -> Path:
    return _package_file("matplotlib", "mpl-data", "sample_data", name)


def photos() -> list[tuple[str, Path]]:
    """The demo's source photos, located inside the installed packages."""
    return [
        ("astronaut", _skimage("astronaut.png")),
        ("cat", _skimage("chelsea.png")),
        ("coffee", _skimage("coffee.png")),
        ("hubble", _skimage("hubble_deep_field.jpg")),
        ("microscopy", _skimage("ihc.png")),
        ("motorcycle", _skimage("motorcycle_left.png")),
        ("retina", _skimage("retina.jpg")),
        ("rocket", _skimage("rocket.jpg")),
        ("temple", _sklearn("china.jpg")),
        ("flower", _sklearn("flower.jpg")),
        ("portrait", _matplotlib("grace_hopper.jpg")),
    ]


# patches: small squares of more photos (textures and grayscale ones too), so that an ImageNet
# network names the photo of only two patches in three and the processing can sway its neighbours.
PATCH_PHOTOS = (
    ("brick", "skimage", "brick.png"), ("camera", "skimage", "camera.png"), ("cells", "skimage", "cell.png"),
    ("clock", "skimage", "clock_motion.png"), ("coins", "skimage", "coins.png"), ("grass", "skimage", "grass.png"),
    ("gravel", "skimage", "gravel.png"), ("moon", "skimage", "moon.png"), ("motorcycle-right", "skimage", "motorcycle_right.png"),
)
PATCH_SIDE = (32, 64)  # pixels of the source photo: the encoder's resize enlarges them 3.5-7x, JPEG blocks with them
PATCH_TRAIN, PATCH_VAL = 8, 6
PATCH_SEED = 1


def patch_photos() -> list[tuple[str, Path]]:
    """The patches dataset's photos: the demo's and nine more that ship in scikit-image."""
    found = {"skimage": _skimage}
    return [*photos(), *((name, found[package](file)) for name, package, file in PATCH_PHOTOS)]


def _patch_box(width: int, height: int, image_id: str) -> tuple[int, int, int, int]:
    rng = rng_for(PATCH_SEED, image_id, "patch")
    side = min(int(rng.integers(PATCH_SIDE[0], PATCH_SIDE[1] + 1)), width, height)
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, left + side, top + side


def patches(options: DatasetOptions) -> Listing:
    """Small square patches of 20 packaged photos, each photo a class: train then val, class by class."""
    return _crops(patch_photos(), PATCH_TRAIN, PATCH_VAL, _patch_box)


def _crop_box(width: int, height: int, image_id: str) -> tuple[int, int, int, int]:
    rng = rng_for(DEMO_SEED, image_id, "demo-crop")
    side = int(min(width, height) * rng.uniform(*CROP_FRACTION))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, left + side, top + side


def listing(options: DatasetOptions, train_per_class: int = TRAIN_PER_CLASS, val_per_class: int = VAL_PER_CLASS) -> Listing:
    """All demo items, train then val, class by class, in a stable order (options are unused)."""
    return _crops(photos(), train_per_class, val_per_class, _crop_box)


def _crops(sources: list[tuple[str, Path]], train_per_class: int, val_per_class: int, box) -> Listing:
    """Crops of each photo, a class per photo, train then val, class by class; `box(width,
    height, image_id)` places each crop."""
    missing = [str(path) for _, path in sources if not path.is_file()]
    if missing:
        raise DataError(
            "the demo dataset needs photos shipped with scikit-image, scikit-learn and matplotlib; "
            f"missing: {', '.join(missing)}. Reinstall with `pip install -e .`"
        )
    items: list[ImageRecord] = []
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for label, (class_name, path) in enumerate(sources):
            width, height = _size(path)
            for index in range(count):
                image_id = f"{class_name}/{split}/{index:03d}"
                items.append(
                    ImageRecord(
                        image_id=image_id,
                        split=split,
                        label=label,
                        label_name=class_name,
                        path=str(path),
                        crop=box(width, height, image_id),
                        unit=class_name,  # crops of one photo are not independent
                    )
                )
    return Listing(items)


# paircams-sim: two simulated cameras, each a fixed processing pipeline (datasets/paircams-sim.toml).
SIM_CAMERAS = (
    ("simulated compact", "jpeg95_444"),  # camera_class 0: light compression
    ("simulated phone", "sharpen4"),  # camera_class 1: strong sharpening, as phone pipelines do
)
SIM_SHIFT = 0.1  # the second shot's crop moves by up to this fraction of its side


def paircams_sim(options: DatasetOptions) -> Listing:
    """Each demo crop is a subject shot once by each simulated camera; the two shots differ by a
    small deterministic shift of the crop and by the camera's processing. All items are `test`."""
    items: list[ImageRecord] = []
    for subject, record in enumerate(listing(options).records):
        assert record.crop is not None
        for camera_class, (camera, op) in enumerate(SIM_CAMERAS):
            crop = record.crop if camera_class == 0 else _shifted(record.crop, _size(Path(record.path)), record.image_id)
            items.append(
                ImageRecord(
                    image_id=f"{record.image_id}/cam{camera_class}",
                    split="test",
                    label=subject,
                    label_name=record.label_name,
                    path=record.path,
                    crop=crop,
                    meta=(
                        ("camera_model", f"{camera} ({op})"),
                        ("camera_class", camera_class),
                        ("subject_id", subject),
                        ("is_smartphone", bool(camera_class)),
                    ),
                    capture=op,
                    unit=record.unit,
                )
            )
    return Listing(items)


@lru_cache(maxsize=None)
def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as handle:
        return handle.size


def _shifted(box: tuple[int, int, int, int], size: tuple[int, int], image_id: str) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    side = right - left
    rng = rng_for(DEMO_SEED, image_id, "paircams-sim-shot")
    reach = int(side * SIM_SHIFT)
    dx, dy = (int(value) for value in rng.integers(-reach, reach + 1, size=2))
    dx = min(max(dx, -left), size[0] - right)  # stay inside the photo
    dy = min(max(dy, -top), size[1] - bottom)
    return left + dx, top + dy, right + dx, bottom + dy
