"""`bench query`: rows of an embedding table by metadata filter, or nearest neighbours of an image."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa

from bench import data, exact_search, vector_index
from bench.errors import BenchError, Remake
from bench.store import FingerprintMismatchError, MissingEmbeddingsError, Store, table_name, vector_matrix
from bench.vectors import normalise


UNSHOWN = ("vector", "source_stamp")  # columns a query returns only when named with --columns


class QueryError(BenchError, ValueError):
    """A query that cannot run as written; the message says why and what is valid."""


def dataset_key(store: Store, name: str, encoder: str, options: "data.DatasetOptions | None" = None) -> str:
    """The store key of the table to read. A dataset that lives in a folder is keyed by that
    folder: with --root it is computed; without, the one table of that dataset and encoder is
    used, and several are refused with the folders they come from."""
    options = options or data.DatasetOptions()
    spec = data.get(name)
    if name.startswith(data.hub.PREFIX):
        options = dataclasses.replace(options, source=name.removeprefix(data.hub.PREFIX))
    if options.root is not None or options.source is not None or not spec.needs_root:
        return spec.store_key(options)
    base = spec.store_key(dataclasses.replace(options, root=None))
    suffix = table_name("", encoder)
    keys = [table.removesuffix(suffix) for table in store.table_names() if table.startswith(f"{base}.") and table.endswith(suffix)]
    if len(keys) == 1:
        return keys[0]
    if not keys:
        return base  # the missing-table error names the extraction command
    folders = ", ".join(f"{key} ({(store.fingerprint(key, encoder).get('dataset') or {}).get('root', '?')})" for key in keys)
    raise QueryError(f"{len(keys)} tables of {base} x {encoder} come from different folders: {folders}; name one with --root")


def _check(store: Store, dataset: str, encoder: str, columns: Sequence[str] | None) -> list[str]:
    if not store.has_table(dataset, encoder):
        raise MissingEmbeddingsError(
            dataset, encoder, f"no table for {dataset} x {encoder} in {store.uri}; tables here: {', '.join(store.table_names()) or 'none'}",
            absent=True,
        )
    valid = store.columns(dataset, encoder)
    unknown = [column for column in columns or () if column not in valid]
    if unknown:
        raise QueryError(f"unknown column(s) {', '.join(unknown)}; valid columns: {', '.join(valid)}")
    return valid


def _shown(where: str | None) -> str:
    """The filter as an error quotes it: whole when short, else its start and its length."""
    return repr(where) if where is None or len(where) <= 120 else f"{where[:100]!r}… ({len(where):,} characters)"


def whole_filter(where: str) -> str:
    """The filter in parentheses, after checking its own parentheses balance outside quotes and it
    has no `;`: the engine reads one expression and ignores what follows it, so `label = 3 junk`
    or `label = 3) OR (1=1` would otherwise run as something the user did not write."""
    depth, quote = 0, ""
    for position, char in enumerate(where):
        if quote:
            quote = "" if char == quote else quote  # a doubled quote closes and reopens: still balanced
        elif char in "'\"":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise QueryError(f"--where {_shown(where)}: unbalanced ')' at character {position + 1}; write one whole filter expression")
        elif char == ";":
            raise QueryError(f"--where {_shown(where)}: ';' at character {position + 1}; write one filter expression, with no statements after it")
    if quote or depth:
        raise QueryError(f"--where {_shown(where)}: {'an unclosed quote' if quote else 'an unclosed ('}; write one whole filter expression")
    return f"({where}\n)"  # a newline ends a trailing -- comment before the closing parenthesis


def _rejected(store: Store, dataset: str, encoder: str, where: str | None, error: ValueError) -> QueryError:
    reason = str(error).split(", /")[0]  # drop the engine's source location
    reason = reason if len(reason) <= 300 else reason[:300] + "…"  # the engine quotes the filter again
    valid = ", ".join(store.columns(dataset, encoder))
    return QueryError(f"--where {_shown(where)} was rejected: {reason}. Valid columns: {valid}")


def _scan(store: Store, dataset: str, encoder: str, where: str | None, columns: list[str], limit: int | None) -> pa.Table:
    try:
        return store.scan(dataset, encoder, where=whole_filter(where) if where else None, columns=columns, limit=limit)
    except ValueError as error:
        raise _rejected(store, dataset, encoder, where, error) from None


def select(store: Store, dataset: str, encoder: str, where: str | None, columns: Sequence[str] | None = None, limit: int | None = None) -> pa.Table:
    """Rows matching `where` (SQL, LanceDB syntax); all columns but the vector unless named."""
    valid = _check(store, dataset, encoder, columns)
    chosen = list(columns) if columns else [column for column in valid if column not in UNSHOWN]
    return _scan(store, dataset, encoder, where, chosen, limit)


def embed_image(encoder: str, path: Path, store: Store, dataset: str) -> np.ndarray:
    """The image's embedding under the encoder that made the table (checked by fingerprint),
    decoded and prepared by extraction's own stages, as the file is (processing `original`)."""
    # torch and the encoders load only when an image is embedded: plain queries stay fast to start
    from bench import encoders, processing
    from bench.data import ImageRecord
    from bench.extraction.embed import Embedder
    from bench.extraction.fingerprint import fingerprint
    from bench.extraction.prepare import DECODE_ERRORS, input_shape_of, prepare
    from bench.runtime import pick_device

    spec = encoders.get(encoder)
    stored = store.fingerprint(dataset, encoder)
    precision = stored.get("precision", "fp32")
    try:
        store.check_fingerprint(dataset, encoder, fingerprint(spec, precision, stored.get("dataset")))
    except FingerprintMismatchError as error:  # the encoder was edited since: remaking the table with the same rows is a fix
        raise FingerprintMismatchError(dataset, encoder, error.problem, remake=_remake(store, dataset, encoder, precision)) from None
    record = ImageRecord(image_id=str(path), split="query", label=-1, label_name="", path=str(path))
    view = input_shape_of(spec)
    try:
        pixels = prepare(record, processing.get("original"), [view]).pixels[view]
    except DECODE_ERRORS as error:
        raise QueryError(f"--like {path}: cannot read the image ({type(error).__name__}: {error})") from None
    embedder = Embedder(encoders.load(spec), pick_device("auto"), stored.get("precision", "fp32"))
    return embedder(pixels[None])[0]


def _remake(store: Store, dataset: str, encoder: str, precision: str) -> Remake:
    """What an extraction that remakes the table with the same rows extracts (splits and processings)."""
    rows = store.scan(dataset, encoder, columns=["split", "processing"])
    splits, processings = (tuple(sorted(set(rows.column(name).to_pylist()))) for name in ("split", "processing"))
    return Remake(processings, splits, precision)


SEARCH_KEY = b"bench.search"  # schema metadata of a `like` result: how the neighbours were found
INDEX_ADVICE_KEY = b"bench.index_would_help"  # present when building the vector index would have let `like` use it


def search_method(found: pa.Table) -> str:
    """How `like` found these rows (the vector index, or exact search and why)."""
    return (found.schema.metadata or {}).get(SEARCH_KEY, b"").decode()


def index_would_help(found: pa.Table) -> bool:
    """Whether `like` searched exactly for want of an index that covers every row."""
    return INDEX_ADVICE_KEY in (found.schema.metadata or {})


def like(
    store: Store, dataset: str, encoder: str, image: Path, k: int, where: str | None = None,
    columns: Sequence[str] | None = None, backend: str = "auto", exact: bool = False,
) -> pa.Table:
    """The k rows (under the filter) nearest to an image, best first, with their cosine `score`:
    through the table's vector index when it covers every row (see `bench.vector_index`), else exactly."""
    valid = _check(store, dataset, encoder, columns)
    chosen = list(columns) if columns else [column for column in valid if column not in UNSHOWN]
    use = vector_index.IndexUse(False, "asked for --exact") if exact else vector_index.usable(store, dataset, encoder)
    indexed, why = use.usable, use.reason
    if indexed:
        query = normalise(embed_image(encoder, image, store, dataset)[None])[0]
        try:
            found = store.nearest_approximate(dataset, encoder, query, k, whole_filter(where) if where else None, chosen)
        except ValueError as error:
            raise _rejected(store, dataset, encoder, where, error) from None
        return found.replace_schema_metadata({SEARCH_KEY: f"nearest by the {why}".encode()})
    candidates = _scan(store, dataset, encoder, where, [*chosen, "vector"] if "vector" not in chosen else chosen, None)
    method = {SEARCH_KEY: f"exact search over {candidates.num_rows} rows ({why})".encode(), **({INDEX_ADVICE_KEY: b"1"} if use.build_helps else {})}
    if candidates.num_rows == 0:
        return candidates.select(chosen).append_column("score", pa.array([], pa.float32())).replace_schema_metadata(method)
    query = embed_image(encoder, image, store, dataset)
    matrix = vector_matrix(candidates)
    found = exact_search.search(normalise(query[None]), normalise(matrix), min(k, len(matrix)), backend=backend)
    rows = found.rows[0][found.rows[0] >= 0]
    result = candidates.select(chosen).take(pa.array(rows)).append_column("score", pa.array(found.scores[0][: len(rows)]))
    return result.replace_schema_metadata(method)
