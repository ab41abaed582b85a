"""The `cameras` dataset and bench.exif on real camera JPEGs (../shared/data/cameras), plus the
listing rules on a synthetic folder."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from PIL.TiffImagePlugin import IFDRational

from bench import exif
from bench.data import cameras
from bench.data.record import METADATA_COLUMNS, DatasetOptions, Listing
from bench.registry import UnknownNameError
from tests.test_exif import shot, write_image

NUMBERS = {"iso": "iso", "exposure": "exposure_time", "aperture": "f_number", "focal_length": "focal_length"}
MAKES = {"Apple", "Canon", "EASTMAN KODAK COMPANY", "EPSON", "GoPro", "Hewlett-Packard", "NIKON", exif.OLYMPUS, "PENTAX", "Panasonic", "SONY"}


@pytest.fixture
def folder(shared_data: Path) -> Path:
    root = shared_data / "cameras"
    if not (root / "manifest.csv").is_file():
        pytest.skip(f"camera test images not found at {root}")
    return root


@pytest.fixture
def manifest(folder: Path) -> list[dict[str, str]]:
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_exif_matches_manifest(folder: Path, manifest: list[dict[str, str]]) -> None:
    assert len(manifest) == 274
    for row in manifest:
        found = exif.read(folder / row["path"])
        assert (found.raw_make, found.raw_model) == (row["make"], row["model"]), row["path"]
        assert found.make == exif.normalise_make(row["make"]) and found.model == exif.normalise_model(found.make, row["model"])
        assert found.is_smartphone is (found.make == "Apple"), row["path"]  # the only phones here are iPhones
        for attribute, column in NUMBERS.items():
            value = getattr(found, attribute)
            if row[column] == "":
                assert value is None, (row["path"], attribute)
            else:
                assert value == pytest.approx(float(row[column]), rel=1e-6), (row["path"], attribute)


def test_makes_and_models_normalise(folder: Path, manifest: list[dict[str, str]]) -> None:
    raw = {(row["make"], row["model"]) for row in manifest}
    assert len({make for make, _ in raw}) == 14 and len(raw) == 38
    assert {exif.normalise_make(make) for make, _ in raw} == MAKES  # 14 vendor spellings, 11 vendors
    assert len({(exif.normalise_make(make), exif.normalise_model(exif.normalise_make(make), model)) for make, model in raw}) == 38


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("Apple/iPhone_XR/IMG_3580.jpg", "f/1.8"),  # FNumber 1.8, a class
        ("Canon/Canon_EOS_RP/MG_0631.jpg", "f/2.8"),
        ("Canon/Canon_EOS_DIGITAL_REBEL_XT/MG_9376.jpg", "f/4.5"),
        ("Panasonic/PV-SD4090/P1000241.jpg", "f/7.1"),  # 7.2 is 1.4 % from 7.1
        ("Hewlett-Packard/Photosmart_M417/HPIM0005.jpg", None),  # 2.91 is 3.9 % from 2.8
        ("Apple/iPhone_13_Pro/IMG_8566.jpg", None),  # 1.5 is below f/1.8
        ("SONY/SLT-A57/DSC8827.jpg", None),  # 14 is above f/11
    ],
)
def test_binned_aperture_by_hand(folder: Path, path: str, expected: str | None) -> None:
    assert exif.read(folder / path).bins()["aperture"] == expected


def check_listing(listing: Listing, total: int) -> None:
    """Invariants every cameras listing keeps."""
    ids = [record.image_id for record in listing.records]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    names = sorted({record.label_name for record in listing.records})
    assert all(record.label == names.index(record.label_name) for record in listing.records)
    assert {record.split for record in listing.records} <= {"train", "val", "test"}
    assert all(reject["reason"] and reject["path"] for reject in listing.rejects)
    assert len(listing.records) + len(listing.rejects) == total
    for record in listing.records:
        assert set(dict(record.meta)) <= set(METADATA_COLUMNS) and Path(record.path).is_file()


@pytest.mark.parametrize("attribute", ["make", "model", "aperture"])
def test_listing_on_real_images(folder: Path, manifest: list[dict[str, str]], attribute: str) -> None:
    options = DatasetOptions(root=folder, attribute=attribute)
    first, second = cameras.listing(options), cameras.listing(options)
    assert first == second
    check_listing(first, len(manifest))
    assert Counter(record.split for record in first.records).keys() == {"train", "val", "test"}
    by_path = {row["path"]: row for row in manifest}
    for record in first.records:
        meta, row = dict(record.meta), by_path[record.image_id]
        assert meta["camera_make"] == exif.normalise_make(row["make"]) and meta["source_path"] == record.path
        assert meta["aperture"] == pytest.approx(float(row["f_number"]), rel=1e-6)


def test_make_and_model_listings_keep_everything(folder: Path, manifest: list[dict[str, str]]) -> None:
    makes = cameras.listing(DatasetOptions(root=folder))
    assert [record.image_id for record in makes.records] == sorted(row["path"] for row in manifest)
    assert makes.rejects == [] and {record.label_name for record in makes.records} == MAKES
    models = cameras.listing(DatasetOptions(root=folder, attribute="model"))
    photos_per_model = Counter(exif.normalise_model(exif.normalise_make(row["make"]), row["model"]) for row in manifest)
    assert len(photos_per_model) == 38
    assert {record.label_name for record in models.records} == {model for model, count in photos_per_model.items() if count >= 3}
    dropped = {Path(reject["path"]).relative_to(folder).as_posix() for reject in models.rejects}
    assert len(dropped) == sum(count for count in photos_per_model.values() if count < 3) > 0
    assert all("at least 3" in reject["reason"] for reject in models.rejects)


@pytest.mark.parametrize("attribute", cameras.ATTRIBUTES)
def test_splits_are_stratified_by_the_predicted_class(folder: Path, attribute: str) -> None:
    """Every class (all have >= 3 photos) is in train, val and test, ~60/20/20, and the split is stable."""
    listing = cameras.listing(DatasetOptions(root=folder, attribute=attribute))
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for record in listing.records:
        per_class[record.label_name][record.split] += 1
    for name, counts in per_class.items():
        assert counts.keys() == {"train", "val", "test"}, name
        assert counts["val"] == counts["test"] == max(1, int(0.2 * sum(counts.values()) + 0.5)), name
    split = Counter(record.split for record in listing.records)
    assert 0.5 < split["train"] / len(listing.records) < 0.7
    again = cameras.listing(DatasetOptions(root=folder, attribute=attribute))
    assert [(r.image_id, r.split) for r in again.records] == [(r.image_id, r.split) for r in listing.records]


def test_aperture_rejects_say_why(folder: Path) -> None:
    listing = cameras.listing(DatasetOptions(root=folder, attribute="aperture"))
    reasons = {Path(reject["path"]).relative_to(folder).as_posix(): reject["reason"] for reject in listing.rejects}
    assert reasons["Apple/iPhone_13_Pro/IMG_8566.jpg"] == "aperture 1.5 outside the paper's classes"
    assert reasons["SONY/SLT-A57/DSC8827.jpg"] == "aperture 14 outside the paper's classes"
    iso = cameras.listing(DatasetOptions(root=folder, attribute="ISO Speed"))  # FlickrExif spelling
    assert "no Exif ISOSpeedRatings" in {reject["reason"] for reject in iso.rejects}


def test_cameras_listing_on_synthetic_folder(tmp_path: Path) -> None:
    canon = shot("Canon", "Canon EOS RP", aperture=IFDRational(28, 10))
    phone = shot("Apple", "iPhone XR", aperture=IFDRational(15, 10))
    for name in ("canon1.jpg", "canon2.JPG", "canon3.jpg"):
        write_image(tmp_path / "b" / name, *canon)
    for name in ("phone1.jpg", "phone2.jpg", "phone3.jpg"):
        write_image(tmp_path / "a" / name, *phone)
    write_image(tmp_path / "c" / "nikon.jpg", *shot("NIKON CORPORATION", "NIKON D90", aperture=IFDRational(28, 10)))
    write_image(tmp_path / "a" / "bare.png", fmt="PNG")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "a" / "notes.txt").write_text("ignored: not an image extension")
    write_image(tmp_path / ".hidden" / "x.jpg", *canon)

    makes = cameras.listing(DatasetOptions(root=tmp_path))
    assert [(r.image_id, r.label, r.label_name) for r in makes.records] == [
        ("a/phone1.jpg", 0, "Apple"), ("a/phone2.jpg", 0, "Apple"), ("a/phone3.jpg", 0, "Apple"),
        ("b/canon1.jpg", 1, "Canon"), ("b/canon2.JPG", 1, "Canon"), ("b/canon3.jpg", 1, "Canon")]
    assert [(Path(r["path"]).name, r["reason"].split(":")[0]) for r in makes.rejects] == [
        ("bare.png", "no Exif Make"), ("broken.jpg", "cannot open as an image"), ("nikon.jpg", "only 1 photo(s) with make 'NIKON'; a class needs at least 3 to have one in each of train, val and test")]
    for label in (0, 1):
        assert sorted(r.split for r in makes.records if r.label == label) == ["test", "train", "val"]
    meta = dict(makes.records[0].meta)
    assert (meta["camera_make"], meta["camera_model"], meta["is_smartphone"], meta["aperture"]) == ("Apple", "iPhone XR", True, 1.5)

    apertures = cameras.listing(DatasetOptions(root=tmp_path, attribute="aperture"))
    assert [r.label_name for r in apertures.records] == ["f/2.8"] * 4  # the three Canons and the NIKON
    assert "aperture 1.5 outside the paper's classes" in [r["reason"] for r in apertures.rejects]

    with pytest.raises(UnknownNameError, match="Did you mean: aperture"):
        cameras.listing(DatasetOptions(root=tmp_path, attribute="apperture"))
    assert [cameras.attribute_of(name) for name in (None, "Make", "ISO Speed", "Is Smartphone", "Focal Length")] == [
        "make", "make", "iso", "is_smartphone", "focal_length"]


def test_split_sequence_is_about_60_20_20() -> None:
    assert cameras._split_sequence(1) == ["train"]
    assert cameras._split_sequence(2) == ["train", "test"]
    assert cameras._split_sequence(3) == ["train", "val", "test"]
    assert [cameras._split_sequence(10).count(split) for split in ("train", "val", "test")] == [6, 2, 2]
    assert [cameras._split_sequence(100).count(split) for split in ("train", "val", "test")] == [60, 20, 20]
