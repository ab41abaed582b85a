"""--groups: a CSV naming each image's group, for folders whose images are not independent
(crops or frames of one photo, shots of one scene): a group is resampled and permuted as one."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from bench.data.record import Listing
from bench.errors import DataError

MAX_BYTES = 64 * 1024 * 1024  # a groups file beyond this is not a list of images


def read(path: Path) -> dict[str, str]:
    """image -> group from a CSV with a header naming the columns `image` and `group` (an image is
    its id, its path relative to --root, or its absolute path)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"--groups {path}: no such file; give a CSV with the columns image,group")
    if path.stat().st_size > MAX_BYTES:
        raise DataError(f"--groups {path}: {path.stat().st_size:,} bytes is not a list of images (at most {MAX_BYTES:,})")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # a spreadsheet's CSV may open with a byte-order mark
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"--groups {path}: not a CSV file ({error})") from None
    if not rows or not {"image", "group"} <= set(rows[0]):
        raise DataError(f"--groups {path}: the header must name the columns image and group (found {', '.join(rows[0]) if rows else 'nothing'})")
    found: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        image, group = (row.get("image") or "").strip(), (row.get("group") or "").strip()
        if not image or not group:
            raise DataError(f"--groups {path}, line {number}: an image and its group are both needed")
        if found.setdefault(image, group) != group:
            raise DataError(f"--groups {path}, line {number}: {image} is given two groups ({found[image]} and {group})")
    return found


def applied(listing: Listing, path: Path, root: Path | None) -> Listing:
    """The listing with each record's unit set from the groups file; an image the file does not
    name stays its own unit, and a file naming no image of the dataset is refused."""
    named = read(path)
    base = Path(root).expanduser().resolve() if root is not None else None
    records, matched = [], 0
    for record in listing.records:
        keys = [record.image_id, record.path]
        if base is not None:
            try:
                keys.append(str(Path(record.path).resolve().relative_to(base)))
            except ValueError:
                pass
        group = next((named[key] for key in keys if key in named), None)
        matched += group is not None
        records.append(dataclasses.replace(record, unit=f"group:{group}") if group is not None else record)
    if not matched:
        raise DataError(f"--groups {path}: none of its {len(named)} images is in the dataset; name images by id "
                        f"(e.g. {listing.records[0].image_id if listing.records else 'train/cat/1.jpg'}) or by path under --root")
    return Listing(records, listing.rejects, listing.origin)
