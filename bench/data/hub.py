"""Image datasets in the Hugging Face Hub's format, read through the `datasets` library (the `hf`
extra): any dataset by repo name or local path (`--dataset hf:<repo or path>`), and PairCams by
name. Nothing is copied: a record points at a row of the library's own cached Arrow files, and
its image's bytes are decoded as they are (no re-encode), so every processing starts from the
published pixels. The library caches what it downloads in the user's HF cache and works offline
once it has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from bench.data.files import file_state
from bench.data.hub_rows import PAIRCAMS_REPO, canonical, load_split, load_splits, locator
from bench.data.record import DatasetOptions, ImageRecord, Listing
from bench.errors import DataError

PREFIX = "hf:"  # --dataset hf:<repo or path>
NO_IMAGE = ""  # referenced_files: a row without an image
SPLIT_NAMES = {"train": ("train",), "val": ("validation", "valid", "val", "dev"), "test": ("test",)}


@dataclass(frozen=True)
class Columns:
    image: str
    label: str
    identifier: str | None  # a column of unique ids; None: the row's split and number


def _features(split: Any) -> dict[str, Any]:
    return dict(split.features)


def _column(features: dict[str, Any], wanted: str | None, kind: str, usual: tuple[str, ...], option: str, source: str) -> str:
    if wanted is not None:
        if wanted not in features:
            raise DataError(f"hf:{source}: no column {wanted!r} for {option}; its columns are {', '.join(features)}")
        return wanted
    typed = [name for name, feature in features.items() if type(feature).__name__ == kind]
    if len(typed) == 1:
        return typed[0]
    named = [name for name in usual if name in features]
    if named:
        return named[0]
    raise DataError(f"hf:{source}: cannot tell which column holds the {option.removeprefix('--').removesuffix('-column')}s; "
                    f"its columns are {', '.join(f'{name} ({type(feature).__name__})' for name, feature in features.items())}; "
                    f"name one with {option}")


def _split_map(options: DatasetOptions, present: list[str], source: str) -> dict[str, str]:
    """bench split -> the dataset's split: --hf-splits, else the usual names (validation for val;
    the test split for val when there is no validation split)."""
    if options.hf_splits:
        mapping = dict(options.hf_splits)
        unknown = [name for name in mapping.values() if name not in present]
        if unknown:
            raise DataError(f"hf:{source}: no split {', '.join(unknown)}; its splits are {', '.join(present)}")
        return mapping
    mapping = {}
    for ours, names in SPLIT_NAMES.items():
        found = next((name for name in names if name in present and name not in mapping.values()), None)
        if found is not None:
            mapping[ours] = found
    if "val" not in mapping and "test" in mapping:
        mapping["val"] = mapping.pop("test")
    if "train" not in mapping:
        raise DataError(f"hf:{source}: no train split among {', '.join(present)}; map them with --hf-splits train=NAME,val=NAME")
    return mapping


def listing(options: DatasetOptions) -> Listing:
    """Every row of the mapped splits, labelled by the label column, in split and row order."""
    assert options.source is not None
    source, revision = canonical(options.source), options.revision
    splits = load_splits(source, revision)
    mapping = _split_map(options, list(splits), source)
    features = _features(splits[mapping["train"]])
    columns = Columns(
        _column(features, options.image_column, "Image", ("image", "img", "picture"), "--image-column", source),
        _column(features, options.label_column, "ClassLabel", ("label", "labels", "fine_label", "class"), "--label-column", source),
        options.id_column,
    )
    if columns.identifier is not None and columns.identifier not in features:
        raise DataError(f"hf:{source}: no column {columns.identifier!r} for --id-column; its columns are {', '.join(features)}")
    label_kind = type(features[columns.label]).__name__
    if columns.label == columns.image or label_kind not in ("ClassLabel", "Value"):
        raise DataError(f"hf:{source}: the column {columns.label!r} holds {label_kind} values, not class labels; name a column of "
                        f"class labels (ClassLabel, whole numbers or text) with --label-column; its columns are "
                        f"{', '.join(f'{name} ({type(feature).__name__})' for name, feature in features.items())}")
    names = _label_names(splits, mapping, columns.label)
    records: list[ImageRecord] = []
    rejects: list[dict[str, str]] = []
    for ours, theirs in mapping.items():
        split = splits[theirs]
        values = split[columns.label]
        ids = split[columns.identifier] if columns.identifier else [f"{theirs}/{row}" for row in range(len(split))]
        files = referenced_files(split, columns.image)
        for row, (value, image_id, file) in enumerate(zip(values, ids, files)):
            path = locator(source, revision, theirs, columns.image, row)
            state = f"hf:{split._fingerprint}"
            if file == NO_IMAGE:
                rejects.append({"path": path, "reason": f"no image (the {columns.image} column is empty in this row)"})
                continue
            if file is not None:  # the row names a file instead of holding its bytes: the file is stamped as a folder's would be
                try:
                    state += f"|{file_state(file, options.verify_content)}"
                except OSError as error:
                    rejects.append({"path": path, "reason": f"the file it names, {file}, cannot be read ({error.strerror or error})"})
                    continue
            if value is None:
                rejects.append({"path": path, "reason": f"no label (the {columns.label} column is empty in this row)"})
                continue
            label, name = names[value]
            records.append(ImageRecord(str(image_id), ours, label, name, path, file_state=state))
    if len({record.image_id for record in records}) != len(records):
        raise DataError(f"hf:{source}: the ids of --id-column {columns.identifier} repeat; ids must be unique")
    origin = {"source": source, "revision": revision, "splits": {ours: [theirs, len(splits[theirs])] for ours, theirs in mapping.items()},
              "columns": {"image": columns.image, "label": columns.label, "id": columns.identifier}}
    return Listing(records, rejects, origin=origin)


def referenced_files(split: Any, column: str) -> list[str | None]:
    """Per row, the file its image column names when the row holds no image bytes of its own;
    None where the bytes are in the row, NO_IMAGE where it has neither. Reads no image bytes."""
    import pyarrow as pa

    storage = split.data.column(column)
    if pa.types.is_string(storage.type) or pa.types.is_large_string(storage.type):
        return [value or NO_IMAGE for value in storage.to_pylist()]
    if not pa.types.is_struct(storage.type) or storage.type.get_field_index("path") < 0 or storage.type.get_field_index("bytes") < 0:
        return [None] * len(split)
    found: list[str | None] = []
    for chunk in storage.chunks:
        present, inline, paths = chunk.is_valid().to_pylist(), chunk.field("bytes").is_valid().to_pylist(), chunk.field("path").to_pylist()
        found += [None if here and has_bytes else path if here and path else NO_IMAGE for here, has_bytes, path in zip(present, inline, paths)]
    return found


def _label_names(splits: Any, mapping: dict[str, str], column: str) -> dict[Any, tuple[int, str]]:
    """label value -> (class index, class name): a ClassLabel's own names, else the sorted distinct values."""
    feature = splits[mapping["train"]].features[column]
    if type(feature).__name__ == "ClassLabel":
        return {index: (index, name) for index, name in enumerate(feature.names)}
    values = sorted({value for theirs in mapping.values() for value in splits[theirs][column] if value is not None}, key=lambda value: (str(type(value)), value))
    return {value: (index, str(value)) for index, value in enumerate(values)}


def paircams(options: DatasetOptions, meta_of: Callable[[str, int], "tuple[tuple[str, object], ...] | str"]) -> Listing:
    """PairCams as published on the Hub (split train: image, subject_idx, model), by name or from
    a local copy in the Hub's format (`--root`); `meta_of(model, subject)`: an image's metadata
    (camera class from the paper's model mapping), or why it is left out."""
    source = canonical(str(options.root)) if options.root is not None else PAIRCAMS_REPO
    split_name = "train"
    split = load_split(source, options.revision, split_name)
    missing = [column for column in ("image", "subject_idx", "model") if column not in split.features]
    if missing:
        raise DataError(f"paircams: {source} has no column {', '.join(missing)}; PairCams has image, subject_idx and model")
    records: list[ImageRecord] = []
    rejects: list[dict[str, str]] = []
    state = f"hf:{split._fingerprint}"
    subjects, models = split["subject_idx"], split["model"]
    for row in sorted(range(len(split)), key=lambda row: (int(subjects[row]), row)):
        path = locator(source, options.revision, split_name, "image", row)
        subject = int(subjects[row])
        meta = meta_of(str(models[row]), subject)
        if isinstance(meta, str):
            rejects.append({"path": path, "reason": meta})
            continue
        records.append(ImageRecord(f"{split_name}/{row}", "test", subject, f"subject {subject}", path, meta=meta, file_state=state))
    return Listing(records, rejects, origin={"source": source, "revision": options.revision, "splits": {"test": [split_name, len(split)]}})
