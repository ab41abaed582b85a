"""The dataset audit: the JPEG quality estimator against Pillow's own settings, Cramér's V and its
test on planted and shuffled folders, files as the unit, and the verb's output and bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from bench.audit import association, command, properties, quality, stored
from bench.audit.measure import CONSTANT, LABEL, MEASURED, ONE_FILE, AuditOutcome, AuditSettings
from bench.data import DatasetOptions
from bench.report import audit as board
from bench.report import writer
from tests.conftest import run_bench

QUALITIES = (50, 75, 95)
PER_CLASS = 100  # a shuffled 3 × 3 table of 300 files has V ≤ 0.1 in about 97 % of shuffles
SIDE = 8


def _jpeg(quality_setting: int | None, **options: object) -> Image.Image:
    """A small JPEG saved by Pillow at a quality, or with the tables given (Pillow scales given tables by a quality)."""
    buffer = io.BytesIO()
    pixels = np.random.default_rng(quality_setting).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    setting = {} if quality_setting is None else {"quality": quality_setting}
    Image.fromarray(pixels, "RGB").save(buffer, "JPEG", **setting, **options)
    buffer.seek(0)
    return Image.open(buffer)


def test_quality_estimate_recovers_every_quality_pillow_saves_with() -> None:
    for setting in range(1, 101):
        image = _jpeg(setting)
        assert quality.quality_label(image) == f"q{setting}"
        assert quality.estimate(image.quantization) == quality.QualityEstimate(setting, 0)


def test_subsampling_and_formats_are_read_from_the_header() -> None:
    assert quality.subsampling_label(_jpeg(80, subsampling=0)) == "4:4:4"
    assert quality.subsampling_label(_jpeg(80, subsampling=1)) == "4:2:2"
    assert quality.subsampling_label(_jpeg(80, subsampling=2)) == "4:2:0"
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, "JPEG", quality=60)
    assert quality.subsampling_label(Image.open(buffer)) == "grayscale"
    assert quality.quality_label(Image.open(buffer)) == "q60"  # luma only: the chroma table is absent
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    png = Image.open(buffer)
    assert quality.quality_label(png) == quality.subsampling_label(png) == "not JPEG"


def test_tables_no_quality_fits_are_called_non_standard() -> None:
    flat = [[3 + (index % 7) * 9 for index in range(64)], [40] * 64]  # no IJG quality makes these
    assert quality.quality_label(_jpeg(None, qtables=flat)) == "non-standard"
    near = list(quality.scaled(quality.LUMA, 80))
    near[5] += 1  # one entry off by one: another encoder's rounding
    assert quality.quality_label(_jpeg(None, qtables=[near, list(quality.scaled(quality.CHROMA, 80))])) == "q80"


def test_pixel_size_bins_by_the_long_side() -> None:
    assert properties.size_bin(32, 20) == "≤32 px"
    assert properties.size_bin(20, 33) == "33–64 px"
    assert properties.size_bin(4097, 10) == ">4096 px"


def test_bias_corrected_v_matches_bergsma_by_hand() -> None:
    table = np.array([[12.0, 3, 5], [4, 9, 7], [2, 6, 14], [8, 8, 2]])
    n, (r, k) = table.sum(), table.shape
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    phi2 = max(0.0, chi2 / n - (k - 1) * (r - 1) / (n - 1))
    by_hand = np.sqrt(phi2 / min(k - (k - 1) ** 2 / (n - 1) - 1, r - (r - 1) ** 2 / (n - 1) - 1))
    assert association.cramers_v(table) == pytest.approx(by_hand, rel=1e-12)
    assert association.cramers_v(np.array([[5.0, 0], [0, 5]])) > association.cramers_v(np.array([[3.0, 2], [2, 3]]))
    assert association.cramers_v(np.array([[5.0, 5, 5]])) == 0.0  # one class: nothing to measure


def _folder(root: Path, classes_of_files: list[int]) -> Path:
    """PER_CLASS files saved at each of QUALITIES (file i at QUALITIES[i // PER_CLASS]), put in the class folders given."""
    rng = np.random.default_rng(7)
    for index, label in enumerate(classes_of_files):
        folder = root / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"{index:04d}.jpg", quality=QUALITIES[index // PER_CLASS])
    return root


def _audit(root: Path, settings: AuditSettings = AuditSettings()) -> AuditOutcome:
    return command.audit("imagefolder", DatasetOptions(root=root), settings, Console(file=io.StringIO()))


def _row(outcome: AuditOutcome, name: str):
    return next(found for found in outcome.properties if found.name == name)


def test_a_folder_whose_classes_were_saved_at_their_own_quality_reads_v_near_one_and_marked(tmp_path: Path) -> None:
    planted = _folder(tmp_path, [index // PER_CLASS for index in range(len(QUALITIES) * PER_CLASS)])
    outcome = _audit(planted)
    jpeg = _row(outcome, "jpeg_quality")
    assert jpeg.status == MEASURED and jpeg.v >= 0.9 and jpeg.low >= 0.9 and jpeg.marked and jpeg.p == pytest.approx(1 / 1000)
    assert {link.value: link.classes[0][0] for link in jpeg.values} == {"q50": "class0", "q75": "class1", "q95": "class2"}
    for same in ("format", "subsampling", "pixel_size", "make"):
        assert _row(outcome, same).status == CONSTANT and not _row(outcome, same).marked
    text = board.as_markdown([outcome])
    assert "| JPEG quality | 100 % | 3 |" in text and "]* |" in text and "constant (JPEG): no association can be measured" in text


def test_the_same_files_shuffled_over_the_classes_read_v_near_zero_and_unmarked(tmp_path: Path) -> None:
    count = len(QUALITIES) * PER_CLASS
    shuffled = np.random.default_rng(2026).permutation(count) % len(QUALITIES)
    outcome = _audit(_folder(tmp_path, shuffled.tolist()))
    jpeg = _row(outcome, "jpeg_quality")
    assert jpeg.status == MEASURED and jpeg.v <= 0.1 and not jpeg.marked and jpeg.p > 0.05
    assert 0.0 <= jpeg.low <= jpeg.v <= jpeg.high <= 1.0


def test_the_permutation_p_value_holds_its_level_under_the_null() -> None:
    rng = np.random.default_rng(11)
    rejected = 0
    for _ in range(200):
        labels = rng.integers(0, 4, 120)
        values = rng.integers(0, 3, 120)
        coded = association.Coded(labels, np.arange(120), values, 4, 3)
        rejected += association.permutation_p(coded, float(association.cramers_v(coded.table())), 99, rng) <= 0.05
    assert rejected / 200 <= 0.09  # 5 % expected; 0.09 is three Monte-Carlo errors above it


def test_images_cut_from_one_file_move_together() -> None:
    # ten files, each a class of its own, crops of each file: the property fixes the class, but which
    # file carries which value is all there is to permute, and every assignment reads the same
    units = np.repeat(np.arange(10), 14)
    coded = association.Coded(units.copy(), units, np.arange(10) % 2, 10, 2)
    observed = float(association.cramers_v(coded.table()))
    assert observed > 0.9
    assert association.permutation_p(coded, observed, 199, np.random.default_rng(0)) == 1.0
    per_image = association.Coded(units.copy(), np.arange(140), (np.arange(10) % 2)[units], 10, 2)  # crops taken as files
    assert association.permutation_p(per_image, observed, 199, np.random.default_rng(0)) == pytest.approx(1 / 200)


def test_benjamini_hochberg_steps_up() -> None:
    # 0.036 passes its threshold 3/4 × 0.05, so the two smaller pass too, though 0.02 misses 1/4 × 0.05
    assert association.benjamini_hochberg([0.036, 0.02, 0.03, 0.5], 0.05) == [True, True, True, False]
    assert association.benjamini_hochberg([0.01, 0.04, 0.03, 0.5], 0.05) == [True, False, False, False]
    assert association.benjamini_hochberg([0.02, 0.5], 0.05) == [True, False]
    assert association.benjamini_hochberg([0.03, 0.04], 0.05) == [True, True]


def test_damaged_files_are_counted_unreadable_and_the_outcome_is_stored(tmp_path: Path) -> None:
    root = _folder(tmp_path / "data", [index // PER_CLASS for index in range(len(QUALITIES) * PER_CLASS)])
    (root / "class0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "class1" / "empty.png").write_bytes(b"")
    home = tmp_path / "home"
    done = run_bench(home, "audit", "--dataset", "imagefolder", "--root", str(root), "--permutations", "99", "--bootstrap", "50")
    assert done.returncode == 0, done.stderr
    assert "JPEG quality" in done.stdout and "2 file(s) unreadable" in done.stdout.replace("\n", " ")
    files = list((home / "reports" / "results" / "audit").glob("imagefolder.*.json"))
    assert len(files) == 1
    outcome = stored.from_json(json.loads(files[0].read_text(encoding="utf-8")))
    assert outcome.unreadable == 2 and outcome.readable == 300 and _row(outcome, "jpeg_quality").marked
    assert outcome.settings == AuditSettings(permutations=99, resamples=50)
    _, markdown, _ = writer.write(home / "reports" / "results", home / "reports" / "latest", "audit only")
    page = markdown.read_text(encoding="utf-8")
    assert "## dataset audit · imagefolder" in page and "| JPEG quality | 100 % | 3 |" in page


def test_worker_processes_read_what_this_process_reads(tmp_path: Path) -> None:
    root = _folder(tmp_path, [index // PER_CLASS for index in range(len(QUALITIES) * PER_CLASS)])
    (root / "class2" / "broken.jpg").write_bytes(b"\xff\xd8 cut short")
    paths = sorted(str(path) for path in root.rglob("*.jpg"))
    seen: list[int] = []
    serial = properties.read(paths, advance=seen.append)
    assert sum(seen) == len(paths) and len(serial.unreadable) == 1 and len(serial.values) == len(paths) - 1
    assert properties.read(paths, workers=2) == serial


def test_bad_options_are_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = run_bench(tmp_path, "audit", "--dataset", "cameras")
    assert missing.returncode == 2 and "needs --root" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    table_out = run_bench(tmp_path, "audit", "--dataset", "demo", "--out", str(tmp_path / "board.csv"))
    assert table_out.returncode == 2 and "--format" in table_out.stderr and len(table_out.stderr.strip().splitlines()) == 1
    zero = run_bench(tmp_path, "audit", "--dataset", "demo", "--permutations", "0")
    assert zero.returncode == 2 and "must be at least 1" in zero.stderr


def test_cameras_read_their_own_tables_and_exif(shared_data: Path) -> None:
    outcome = command.audit("cameras", DatasetOptions(root=shared_data / "cameras"), AuditSettings(permutations=199, resamples=100),
                            Console(file=io.StringIO()))
    assert _row(outcome, "make").status == LABEL  # the labels are the Exif make: not audited against themselves
    jpeg, model = _row(outcome, "jpeg_quality"), _row(outcome, "model")
    assert jpeg.status == MEASURED and jpeg.marked and 0.2 < jpeg.v < 0.6
    assert "non-standard" in {link.value for link in jpeg.values}
    assert model.marked and model.v > 0.9


def test_cifar_files_carry_the_tables_of_quality_75(shared_data: Path) -> None:
    files = sorted((shared_data / "cifar10-test" / "cat").glob("*.jpg"))[:20]
    assert files, "cifar10-test/cat holds no .jpg files"
    assert {properties.of_file(str(path))["jpeg_quality"] for path in files} == {"q75"}


def test_crops_count_as_their_file_so_they_do_not_read_as_association() -> None:
    files = np.arange(60)
    file_classes = files % 6  # six classes of ten files; each file's value drawn apart from its class
    by_crop, by_file = [], []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        units = np.repeat(files, rng.integers(3, 13, len(files)))
        coded = association.Coded(file_classes[units], units, rng.integers(0, 4, len(files)), 6, 4)
        by_crop.append(float(association.cramers_v(coded.table())))
        by_file.append(float(association.cramers_v(association.per_file(coded).table())))
        assert association.per_file(coded).table().sum() == pytest.approx(len(files))  # every file counts once
    assert np.mean(by_file) < 0.08 and min(by_crop) > 0.15  # counted crop by crop, the crops made an association
    planted = association.per_file(association.Coded(file_classes[units], units, file_classes % 4, 6, 4))
    assert float(association.cramers_v(planted.table())) > 0.9  # a value set by the class still reads as one
    single = association.Coded(file_classes, files, file_classes % 4, 6, 4)
    assert association.per_file(single) is single  # one image a file: the numbers are those of the plain counts


def test_a_dataset_of_one_file_a_class_says_no_association_can_be_measured() -> None:
    outcome = command.audit("patches", DatasetOptions(), AuditSettings(permutations=19, resamples=20), Console(file=io.StringIO()))
    varying = [found for found in outcome.properties if len(found.values) > 1]
    assert varying and outcome.files == outcome.classes < outcome.readable  # one photo a class, cut into crops
    assert all(found.status == ONE_FILE and found.v is None and not found.marked for found in varying)
    text = board.as_markdown([outcome])
    assert "each class is one file: no association can be measured" in text and "(none: each class is one file)" in text
