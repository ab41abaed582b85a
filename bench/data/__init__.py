"""Dataset adapters: each yields ImageRecords in a stable order with stable ids."""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import numpy as np

from bench import registry
from bench.data import annotated, cameras, demo, folders, groups, hub, hub_rows
from bench.data.files import file_state
from bench.data.record import METADATA_COLUMNS, DatasetOptions, ImageRecord, Listing
from bench.errors import DataError
from bench.naming import safe_part


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    listing: Callable[[DatasetOptions], Listing]
    card: str  # datasets/<name>.toml
    knn_k: int = 10  # the paper: k=10 on ImageNet, k=1 on iNat
    needs_root: bool = False
    exif_orientation: bool = False  # rotate by the Exif orientation tag, as the paper's loader for this data does
    attributes: bool = False  # the labels come from a chosen --attribute (make, ISO, …)
    takes_root: bool = False  # --root is optional (needs_root: required)
    hub: str = ""  # "any": a Hugging Face dataset named by --dataset hf:<source> (it takes the column and split options); "revision": takes --revision
    unit: str = "image"  # what one independent unit is: the intervals resample it, the rules name it

    def store_key(self, options: DatasetOptions | None = None) -> str:
        """The dataset's name in the store and in result cells. Labels and splits depend on the
        attribute, and rows on the folder, so each attribute and each folder gets its own tables
        and cells: `cameras@make.<folder name>-<hash of its absolute path>`."""
        options = options or DatasetOptions()
        self.check(options)
        key = f"{self.name}@{options.attribute}" if options.attribute else self.name
        if options.source is not None:
            source = hub_rows.canonical(options.source)
            which = "|".join(map(str, (source, options.revision, options.image_column, options.label_column, options.id_column,
                                        options.hf_splits)))
            name = safe_part(Path(source).name if hub_rows.is_local(options.source) else source.replace("/", "-"))[:32] or "source"
            return f"{key}.{name}-{hashlib.blake2b(which.encode(), digest_size=4).hexdigest()}"
        if options.root is None:
            return key
        root = resolved_root(options.root)
        return f"{key}.{safe_part(root.name)[:32] or 'root'}-{hashlib.blake2b(str(root).encode(), digest_size=4).hexdigest()}"

    def check(self, options: DatasetOptions) -> None:
        """Refuse options this dataset does not take, before anything is keyed or written by them."""
        if options.root is not None and not (self.needs_root or self.takes_root):
            raise DataError(f"dataset {self.name!r} takes no --root: it is built from what is installed or downloaded ({self.card}); "
                            "leave --root out, or read a folder of class subfolders with --dataset imagefolder --root DIR")
        if options.attribute is not None and not self.attributes:
            raise DataError(f"dataset {self.name!r} takes no --attribute: its labels are fixed; --attribute chooses the label "
                            "of cameras and flickrexif")
        columns = {"--image-column": options.image_column, "--label-column": options.label_column, "--id-column": options.id_column,
                   "--hf-splits": options.hf_splits or None}
        given = [flag for flag, value in columns.items() if value is not None]
        if given and self.hub != "any":
            raise DataError(f"{', '.join(given)}: only for a Hugging Face dataset (--dataset hf:<repo or path>), not {self.name!r}")
        if options.revision is not None and not self.hub:
            raise DataError(f"--revision: only for datasets read from the Hugging Face Hub (hf:<repo>, paircams), not {self.name!r}")

    def list(self, options: DatasetOptions | None = None) -> Listing:
        """Records in stable order; a dataset that lives on disk needs --root."""
        options = options or DatasetOptions()
        self.check(options)
        if self.needs_root and options.root is None:
            raise DataError(f"dataset {self.name!r} needs --root pointing at its folder; see {self.card} for the layout")
        if options.root is not None and not options.root.is_dir():
            raise DataError(f"dataset {self.name!r}: --root {options.root} is not a folder; see {self.card} for the layout")
        if self.hub == "any" and options.source is None:
            raise DataError("a Hugging Face dataset is named --dataset hf:<repo or local path>, e.g. hf:uoft-cs/cifar10")
        return _stamped(self.listing(options), orient=self.exif_orientation, content=options.verify_content)


def _stamped(listing: Listing, orient: bool, content: bool = False) -> Listing:
    """Every record with its file's state (a file that cannot be read becomes a reject) and the
    dataset's orientation rule; `content`: states from a hash of each file's bytes."""
    states: dict[str, str | None] = {}
    records: list[ImageRecord] = []
    rejects = list(listing.rejects)
    for record in listing.records:
        if record.file_state:  # stated by its adapter (a Hub row: its dataset's fingerprint)
            records.append(dataclasses.replace(record, orient=orient or record.orient))
            continue
        if record.path not in states:
            try:
                states[record.path] = file_state(record.path, content)
            except OSError as error:
                states[record.path] = None
                rejects.append({"path": record.path, "reason": f"cannot read ({error.strerror or error})"})
        state = states[record.path]
        if state is not None:
            records.append(dataclasses.replace(record, file_state=state, orient=orient or record.orient))
    return Listing(records, rejects, listing.origin)


def resolved_root(root: Path) -> Path:
    return Path(root).expanduser().resolve()


DATASETS: dict[str, DatasetSpec] = registry.build(
    "dataset",
    [
        DatasetSpec(
            name="demo",
            description="offline: 11 real photos shipped in scikit-image/scikit-learn/matplotlib, "
            f"{demo.TRAIN_PER_CLASS} train + {demo.VAL_PER_CLASS} val deterministic crops each",
            listing=demo.listing,
            card="datasets/demo.toml",
            unit="source photo",
        ),
        DatasetSpec(
            name="patches",
            description=f"offline, the default: {demo.PATCH_SIDE[0]}-{demo.PATCH_SIDE[1]} px patches of 20 photos shipped in "
            f"scikit-image/scikit-learn/matplotlib, {demo.PATCH_TRAIN} train + {demo.PATCH_VAL} val each; hard enough that "
            "the processing sways the kNN vote",
            listing=demo.patches,
            card="datasets/patches.toml",
            unit="source photo",
        ),
        DatasetSpec(
            name="demo-mini",
            description="the demo photos with 4 train + 2 val crops each: a smoke test in seconds",
            listing=partial(demo.listing, train_per_class=4, val_per_class=2),
            card="datasets/demo.toml",
            unit="source photo",
            knn_k=3,
        ),
        DatasetSpec(
            name="paircams-sim",
            description="offline PairCams simulation: each demo crop shot by two simulated cameras "
            "(fixed processing pipelines), 242 pairs; a simulation, not camera data",
            listing=demo.paircams_sim,
            card="datasets/paircams-sim.toml",
            unit="source photo",
        ),
        DatasetSpec(
            name="imagefolder",
            description="any folder of class subfolders: <root>/[train|val|test/]<class>/<image>",
            listing=folders.imagefolder, card="datasets/imagefolder.toml", needs_root=True,
        ),
        DatasetSpec(
            name="imagenet",
            description="ImageNet-1k, standard train/val layout with wnid folders (k = 10, as the paper)",
            listing=folders.imagenet, card="datasets/imagenet.toml", needs_root=True,
        ),
        DatasetSpec(
            name="inat2018",
            description="iNaturalist 2018 with the official train2018/val2018 JSON annotations (k = 1, as the paper)",
            listing=annotated.inat2018, card="datasets/inat2018.toml", needs_root=True, knn_k=1,
        ),
        DatasetSpec(
            name="flickrexif",
            description="FlickrExif images <FlickrID>.<ext> + the paper's split JSONs; --attribute picks the label",
            listing=annotated.flickrexif, card="datasets/flickrexif.toml", needs_root=True, exif_orientation=True, attributes=True,
        ),
        DatasetSpec(
            name="cameras",
            description="any folder of camera photos labelled by their own Exif; --attribute make (default), model, "
            "is_smartphone, iso, exposure, aperture or focal_length (the paper's classes)",
            listing=cameras.listing, card="datasets/cameras.toml", needs_root=True, exif_orientation=True, attributes=True,
        ),
        DatasetSpec(
            name="paircams",
            description="PairCams: same subject shot by a modern phone and an older camera; from the Hub (CTU-OU/PairCams), "
            "or --root: a local copy in the Hub's format, or a folder with metadata.csv",
            listing=annotated.paircams, card="datasets/paircams.toml", takes_root=True, exif_orientation=True, hub="revision",
            unit="subject",
        ),
        DatasetSpec(
            name="hf",
            description="any image dataset on the Hugging Face Hub or in its format on disk: --dataset hf:<repo or path> "
            "(--image-column, --label-column, --hf-splits)",
            listing=hub.listing, card="datasets/hf.toml", hub="any",
        ),
    ],
)


def get(name: str) -> DatasetSpec:
    """The spec of a dataset name; `hf:<source>` names the Hugging Face reader."""
    return DATASETS["hf"] if name.startswith(hub.PREFIX) else registry.lookup("dataset", DATASETS, name)


@dataclass(frozen=True)
class ResolvedDataset:
    """A dataset as one run sees it: its spec, what the user said about it, and its listing
    (made once and handed to every stage that needs the records)."""

    spec: DatasetSpec
    options: DatasetOptions
    listing: Listing

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        """The dataset's name in the store and in result cells."""
        return self.spec.store_key(self.options)

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What the data is: name, attribute, folder, and a digest of the listing (every image's
        id, split, label and label name). Tables and cells record it; a folder whose listing
        changed is detected by the digest."""
        lines = sorted(f"{r.image_id}\t{r.split}\t{r.label}\t{r.label_name}" for r in self.listing.records)
        digest = hashlib.blake2b("\n".join(lines).encode("utf-8"), digest_size=16).hexdigest()
        root = str(resolved_root(self.options.root)) if self.options.root is not None else None
        return {
            "name": self.spec.name, "attribute": self.options.attribute, "root": root, "listing": digest,
            "images": len(self.listing.records), "exif_orientation": self.spec.exif_orientation,
            **({"origin": self.listing.origin} if self.listing.origin else {}),
        }

    @cached_property
    def contents(self) -> str:
        """A digest of what every image's pixels are made from (`ImageRecord.stamp`): an image
        replaced or edited in place changes it, while the listing digest stays the same."""
        lines = sorted(f"{r.image_id}\t{r.split}\t{r.stamp}" for r in self.listing.records)
        return hashlib.blake2b("\n".join(lines).encode("utf-8"), digest_size=16).hexdigest()

    @cached_property
    def units_digest(self) -> str | None:
        """A digest of which images share a unit (None: every image is its own): the intervals and
        tests depend on it, the vectors do not, so it is part of a cell's inputs, not a table's."""
        lines = sorted(f"{r.image_id}\t{r.unit}" for r in self.listing.records if r.unit)
        return hashlib.blake2b("\n".join(lines).encode("utf-8"), digest_size=16).hexdigest() if lines else None

    @property
    def unit_name(self) -> str:
        """What one independent unit of the data is (the rules under tables name it)."""
        return "group (--groups)" if self.options.groups is not None else self.spec.unit

    def units(self, image_ids: "np.ndarray | list[str]") -> list[str]:
        """The unit of each image id (its own id where the dataset names none)."""
        found = {record.image_id: record.unit for record in self.listing.records}
        return [found.get(image_id) or f"image:{image_id}" for image_id in list(image_ids)]

    def splits(self) -> dict[str, int]:
        """Images per split, in the listing."""
        counts: dict[str, int] = {}
        for record in self.listing.records:
            counts[record.split] = counts.get(record.split, 0) + 1
        return counts


def resolve(name: str | DatasetSpec, options: DatasetOptions | None = None) -> ResolvedDataset:
    """Look the dataset up and list it (`hf:<source>`: the source goes into the options)."""
    spec = name if isinstance(name, DatasetSpec) else get(name)
    options = options or DatasetOptions()
    if isinstance(name, str) and name.startswith(hub.PREFIX):
        options = dataclasses.replace(options, source=name.removeprefix(hub.PREFIX))
    listing = spec.list(options)
    if options.groups is not None:
        listing = groups.applied(listing, options.groups, options.root)
    return ResolvedDataset(spec, options, listing)


__all__ = [
    "DATASETS", "DatasetOptions", "DatasetSpec", "ImageRecord", "Listing", "METADATA_COLUMNS", "ResolvedDataset", "get", "resolve",
]
