"""User-declared encoders (an --encoders-file TOML) and per-run weight overrides (--weights)."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from bench.encoders.catalog import ENCODERS, SETS, expand
from bench.encoders.spec import FAMILIES, EncoderSet, EncoderSpec
from bench.errors import BenchError
from bench.registry import UnknownNameError

CUSTOM_LOADERS = ("open_clip", "timm", "checkpoint_url")
MAX_FILE_BYTES = 1 << 20  # an encoders file is a few tables; anything larger is the wrong file
REQUIRED = ("name", "family", "loader", "architecture", "input_size", "embed_dim")
TEXT_FIELDS = ("name", "family", "loader", "architecture", "pretrained", "weights", "url", "interpolation", "pooling", "source")
WHOLE_FIELDS = ("input_size", "embed_dim", "init_seed")
EXAMPLE = """[[encoder]]
name = "mine/vit-b-32.finetuned"   # family/arch.tag
family = "cvl"                     # cvl | ssl | sup
loader = "open_clip"               # open_clip | timm | checkpoint_url
architecture = "ViT-B-32"          # open_clip / timm architecture name
weights = "/path/to/checkpoint.pt" # or pretrained = "<hub tag>"
input_size = 224
embed_dim = 512"""


class EncodersFileError(BenchError, ValueError):
    """An --encoders-file entry is malformed; the message names the file, entry and field."""


def _fail(path: Path, where: str, problem: str) -> EncodersFileError:
    return EncodersFileError(f"{path}: {where}: {problem}. An entry looks like:\n{EXAMPLE}")


def read_file(path: str | Path) -> list[EncoderSpec]:
    """Parse and validate specs from a TOML file with [[encoder]] tables."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():
            raise EncodersFileError(f"{path}: not a regular file (a device, pipe or socket); --encoders-file takes a TOML file")
        if path.is_file() and path.stat().st_size > MAX_FILE_BYTES:
            raise EncodersFileError(f"{path}: {path.stat().st_size:,} bytes, over the {MAX_FILE_BYTES:,} an encoders file may have; "
                                    "--encoders-file takes a small TOML file of [[encoder]] and [[set]] tables")
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EncodersFileError(f"{path}: no such encoders file") from None
    except IsADirectoryError:
        raise EncodersFileError(f"{path}: is a folder; --encoders-file takes a TOML file") from None
    except UnicodeDecodeError:
        raise EncodersFileError(f"{path}: not a text file; --encoders-file takes a TOML file") from None
    except OSError as error:
        raise EncodersFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    except tomllib.TOMLDecodeError as error:
        raise EncodersFileError(f"{path}: not valid TOML ({error})") from None
    entries = document.get("encoder", [])
    unknown_tables = sorted(set(document) - {"encoder", "set"})
    if unknown_tables:
        raise _fail(path, "top level", f"unknown table(s) {', '.join(unknown_tables)}; the file holds [[encoder]] and [[set]] tables")
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries) or not (entries or document.get("set")):
        raise _fail(path, "top level", "expected one or more [[encoder]] tables (or [[set]] tables naming encoders)")
    fields = {field.name for field in dataclasses.fields(EncoderSpec)}
    specs: list[EncoderSpec] = []
    for number, entry in enumerate(entries, start=1):
        where = f"encoder #{number} ({entry.get('name', 'unnamed')})"
        unknown = sorted(set(entry) - fields)
        if unknown:
            raise _fail(path, where, f"unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(fields))}")
        missing = [name for name in REQUIRED if name not in entry]
        if missing:
            raise _fail(path, where, f"missing field(s) {', '.join(missing)}")
        _check_types(path, where, entry)
        if entry["loader"] not in CUSTOM_LOADERS:
            raise _fail(path, where, f"loader must be one of {', '.join(CUSTOM_LOADERS)}, not {entry['loader']!r}")
        if entry["family"] not in FAMILIES:
            raise _fail(path, where, f"family must be one of {', '.join(FAMILIES)}, not {entry['family']!r}")
        if "/" not in entry["name"]:
            raise _fail(path, where, "name must look like family/arch.tag")
        from bench.encoders.loaders import known_architectures  # torch: only when a file is read

        exists = known_architectures(entry["loader"])
        if exists is not None and not exists(entry["architecture"]):
            raise _fail(path, where, f"{entry['loader']} has no architecture {entry['architecture']!r}")
        if not entry.get("weights") and not entry.get("pretrained") and not entry.get("url"):
            raise _fail(path, where, "give weights (a local file), pretrained (a hub tag) or url")
        values = dict(entry)
        for key in ("mean", "std"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        if "options" in values:
            values["options"] = tuple(sorted(dict(values["options"]).items()))
        if values.get("weights"):
            values["weights"] = str((path.parent / values["weights"]).resolve())  # relative to the file
        values.setdefault("pretrained", "")
        values.setdefault("source", f"declared in {path}")
        try:
            specs.append(EncoderSpec(**values))
        except TypeError as error:
            raise _fail(path, where, str(error)) from None
    return specs


def _check_types(path: Path, where: str, entry: dict) -> None:
    for key in TEXT_FIELDS:
        if key in entry and not isinstance(entry[key], str):
            raise _fail(path, where, f"{key} must be a string, got {entry[key]!r}")
    for key in WHOLE_FIELDS:
        if key in entry and (not isinstance(entry[key], int) or isinstance(entry[key], bool) or entry[key] < 0):
            raise _fail(path, where, f"{key} must be a whole number, got {entry[key]!r}")
    for key in ("mean", "std"):
        value = entry.get(key, [0.0, 0.0, 0.0])
        if not isinstance(value, list) or len(value) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise _fail(path, where, f"{key} must be three numbers, got {value!r}")
    if "options" in entry and not isinstance(entry["options"], dict):
        raise _fail(path, where, f"options must be a table of constructor arguments, got {entry['options']!r}")


def read_sets(path: str | Path) -> list[EncoderSet]:
    """The [[set]] tables of an encoders file: name, encoders (encoder or set names, in order), description."""
    path = Path(path)
    document = tomllib.loads(path.read_text(encoding="utf-8"))  # read_file has checked the file parses
    entries = document.get("set", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise EncodersFileError(f"{path}: [[set]] must be tables, e.g. [[set]] name = \"mine\" encoders = [\"paper\", \"mine/a.b\"]")
    sets = []
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: set #{number} ({entry.get('name', 'unnamed')})"
        unknown = sorted(set(entry) - {"name", "encoders", "description"})
        if unknown:
            raise EncodersFileError(f"{where}: unknown field(s) {', '.join(unknown)}; a set has name, encoders and description")
        name, members = entry.get("name"), entry.get("encoders")
        if not isinstance(name, str) or not name or "/" in name:
            raise EncodersFileError(f"{where}: name must be a word without '/' (encoder names have one), got {name!r}")
        if not isinstance(members, list) or not members or not all(isinstance(member, str) for member in members):
            raise EncodersFileError(f"{where}: encoders must be a non-empty list of encoder or set names")
        sets.append(EncoderSet(name, str(entry.get("description", f"declared in {path}")), tuple(members)))
    return sets


def register_file(path: str | Path) -> list[EncoderSpec]:
    """Add a file's specs and sets to the registries; a name that is already taken is refused, and
    so is a set naming an encoder nobody declared."""
    specs = read_file(path)
    sets = read_sets(path)
    for spec in specs:
        if spec.name in ENCODERS and ENCODERS[spec.name] != spec:
            raise EncodersFileError(f"{path}: encoder name {spec.name!r} is already registered; choose another name")
    for found in sets:
        if found.name in SETS and SETS[found.name] != found:
            raise EncodersFileError(f"{path}: set name {found.name!r} is already a set ({SETS[found.name].description}); choose another name")
    _refuse_cycles(path, {**SETS, **{found.name: found for found in sets}}, [found.name for found in sets])
    for spec in specs:
        ENCODERS[spec.name] = spec
    for found in sets:
        SETS[found.name] = found
    for found in sets:
        try:
            expand(found.members)
        except UnknownNameError as error:
            raise EncodersFileError(f"{path}: set {found.name!r}: {error}") from None
    return specs


def _refuse_cycles(path: str | Path, sets: dict[str, EncoderSet], declared: list[str]) -> None:
    """A set that includes itself, directly or through other sets, is refused with the loop it makes."""
    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            loop = " -> ".join((*trail[trail.index(name):], name))
            raise EncodersFileError(f"{path}: set {name!r} includes itself ({loop}); remove one of these members")
        for member in sets[name].members:
            if member in sets:
                visit(member, (*trail, name))

    for name in declared:
        visit(name, ())


def with_weights(spec: EncoderSpec, weights: str | Path) -> EncoderSpec:
    """The same spec with its checkpoint replaced by a local file."""
    path = Path(weights).expanduser().resolve()
    if spec.loader not in CUSTOM_LOADERS:
        raise EncodersFileError(f"--weights: encoder {spec.name} ({spec.loader}) takes no checkpoint file")
    return dataclasses.replace(spec, weights=str(path), source=f"{spec.source}; weights from {path}")
