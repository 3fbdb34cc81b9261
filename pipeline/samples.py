"""The sample schema: one Parquet row per image (an original, or an edit of it), and its validation.

Every shard dataset (originals, LFW, augmentation) holds rows of SAMPLE_SCHEMA: the encoded image,
its identity, split and 40 labels, what edit made it (if any) and by which editor checkpoint, and
(on the synthetic benchmark) its ground-truth attribute regions. `make_row` builds a row from
pixels; `validate_row` / `validate_table` check rows against the schema and name the row and the
field that is wrong. The shard store (`pipeline.shards`) writes and reads tables of these rows.

Schema version 2 stores the image as Hugging Face `datasets`' Image feature (a ``{bytes, path}``
struct, path None) and names every column's feature in the schema metadata under ``huggingface``, so
``datasets.load_dataset("parquet", data_files=...)`` gives decoded PIL faces with no faceaug code.
Version 1 shards (the image as plain bytes) are still read: `upgrade_table` brings a table of either
version to the current schema, and `image_bytes` gives the encoded bytes of an image column of either.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.attributes import CELEBA_ATTRIBUTES
from pipeline.images import encode_png

SCHEMA_VERSION = "2"
NUM_ATTRIBUTES = len(CELEBA_ATTRIBUTES)
EDIT_KINDS = ("original", "added", "removed")
SPLITS = ("train", "valid", "test")
IMAGE_FORMATS = ("png", "jpeg")

# Hugging Face `datasets`' Image feature in Arrow. The field is nullable in Arrow because `datasets` matches a
# feature to a field only if the field is (it treats every field as nullable); validation still requires an image.
IMAGE_TYPE = pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())])

SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("image", IMAGE_TYPE),
        pa.field("image_format", pa.string(), nullable=False),
        pa.field("height", pa.int16(), nullable=False),
        pa.field("width", pa.int16(), nullable=False),
        pa.field("identity", pa.int64(), nullable=False),
        pa.field("source_image_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("attribute_edited", pa.string(), nullable=True),
        pa.field("edit_kind", pa.string(), nullable=False),
        pa.field("attributes", pa.list_(pa.int8(), NUM_ATTRIBUTES), nullable=False),
        pa.field("editor", pa.string(), nullable=True),
        pa.field("editor_version", pa.string(), nullable=True),
        pa.field("editor_checkpoint", pa.string(), nullable=True),
        # Ground-truth attribute regions (synthetic benchmark only): a PNG bitmask with the
        # image's size, bit k set where pipeline.attributes.EDITED_ATTRIBUTES[k] lives.
        pa.field("regions", pa.binary(), nullable=True),
    ]
)
_REQUIRED = ("image", *(f.name for f in SAMPLE_SCHEMA if not f.nullable))
_OPTIONAL = tuple(f.name for f in SAMPLE_SCHEMA if f.nullable and f.type == pa.string())
# Every schema version this code reads; a shard declares its own (ShardEntry.schema_version).
SCHEMAS = {
    "1": SAMPLE_SCHEMA.set(SAMPLE_SCHEMA.get_field_index("image"), pa.field("image", pa.binary(), nullable=False)),
    SCHEMA_VERSION: SAMPLE_SCHEMA,
}


class ShardError(ValueError):
    """Invalid rows or a misuse of the store; the message names the shard/row and field."""


SHARD_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ShardEntry:
    """A committed shard's manifest entry (``_manifest/<name>.json`` in a `pipeline.shards.ShardStore`)."""

    name: str
    file: str  # relative to the store root: "<name>.parquet"
    rows: int
    sha256: str
    bytes: int
    schema_version: str
    created: str
    row_groups: tuple[int, ...]  # rows per row group, in order
    counts: dict[str, int]  # "split/edit_kind" -> rows
    metadata: dict = field(default_factory=dict)  # the caller's per-shard metadata

    def to_json(self) -> dict:
        d = dict(self.__dict__)
        d["row_groups"] = list(self.row_groups)
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "ShardEntry":
        """An entry from its parsed JSON; ShardError naming the field for anything a writer could not have
        written (an entry is read from disk, so it is outside input: its `file` must not point elsewhere)."""
        if not isinstance(d, Mapping):
            raise ShardError(f"manifest entry must be a JSON object, found {type(d).__name__}")

        def get(key: str, kind: type | tuple, default: Any = ...) -> Any:
            if key not in d:
                if default is ...:
                    raise ShardError(f"manifest entry lacks the field {key!r}")
                return default
            value = d[key]
            if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
                raise ShardError(f"manifest entry field {key!r} must be {getattr(kind, '__name__', kind)}, found {value!r:.60}")
            return value

        name, file = get("name", str), get("file", str)
        if not SHARD_NAME_RE.match(name) or file != f"{name}.parquet":
            raise ShardError(f"manifest entry names shard {name!r:.60} with file {file!r:.60}; expected a plain name and '<name>.parquet'")
        rows, size = get("rows", int), get("bytes", int)
        if rows < 0 or size < 0:
            raise ShardError(f"manifest entry field 'rows'/'bytes' must be >= 0, found {rows} and {size}")
        sha = get("sha256", str)
        if not _SHA256_RE.match(sha):
            raise ShardError(f"manifest entry field 'sha256' must be 64 lowercase hex digits, found {sha!r:.80}")
        row_groups = get("row_groups", list, [])
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in row_groups) or (row_groups and sum(row_groups) != rows):
            raise ShardError(f"manifest entry field 'row_groups' must be row counts adding up to rows={rows}, found {row_groups!r:.80}")
        counts = get("counts", dict, {})
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in counts.values()):
            raise ShardError(f"manifest entry field 'counts' must map to row counts, found {counts!r:.80}")
        return cls(name=name, file=file, rows=rows, sha256=sha, bytes=size, schema_version=get("schema_version", str),
                   created=get("created", str), row_groups=tuple(row_groups), counts=dict(counts),
                   metadata=dict(get("metadata", dict, {})))


def sample_id_for(source_image_id: str, attribute: str | None, edit_kind: str) -> str:
    """The conventional sample id: '000123.jpg/original' or '000123.jpg/eyeglasses/added'."""
    if edit_kind == "original":
        return f"{source_image_id}/original"
    return f"{source_image_id}/{attribute}/{edit_kind}"


def make_row(
    *,
    image: np.ndarray,
    identity: int,
    source_image_id: str,
    split: str,
    edit_kind: str,
    attributes: Sequence[int] | np.ndarray,
    attribute_edited: str | None = None,
    sample_id: str | None = None,
    editor: str | None = None,
    editor_version: str | None = None,
    editor_checkpoint: str | None = None,
    regions: np.ndarray | bytes | None = None,
) -> dict:
    """A row dict from an HxWx3 uint8 array (encoded as lossless PNG, stored as {"bytes": png, "path": None}, the
    form a shard is read back in); `regions` an HxW uint8 bitmask."""
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ShardError(f"{source_image_id}: image must be HxWx3 uint8, got {image.dtype} {image.shape}")
    return {
        "sample_id": sample_id or sample_id_for(source_image_id, attribute_edited, edit_kind),
        "image": {"bytes": encode_png(image), "path": None},
        "image_format": "png",
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "identity": int(identity),
        "source_image_id": source_image_id,
        "split": split,
        "attribute_edited": attribute_edited,
        "edit_kind": edit_kind,
        "attributes": [int(v) for v in np.asarray(attributes).reshape(-1)],
        "editor": editor,
        "editor_version": editor_version,
        "editor_checkpoint": editor_checkpoint,
        "regions": encode_png(regions) if isinstance(regions, np.ndarray) else regions,
    }


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG header, or None if the bytes are not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _image_value(value: Any, bad) -> dict:
    """The stored form of a row's image: encoded bytes, or the stored form itself ({"bytes": ..., "path": ...})."""
    path = None
    if isinstance(value, Mapping):
        if set(value) - {"bytes", "path"}:
            raise bad("image", f"has keys {sorted(value)}; an image is encoded bytes or {{'bytes': ..., 'path': ...}}")
        value, path = value.get("bytes"), value.get("path")
        if path is not None and not isinstance(path, str):
            raise bad("image", f"'path' must be a string or None, got {type(path).__name__}")
    if not isinstance(value, (bytes, bytearray, memoryview)) or len(value) == 0:
        raise bad("image", "must be non-empty encoded image bytes")
    return {"bytes": bytes(value), "path": path}


def validate_row(row: Mapping[str, Any], index: int = 0) -> dict:
    """Check one row dict against SAMPLE_SCHEMA; return it normalised (optional keys filled).

    Raises ShardError naming the row (index and sample_id) and the offending field.
    """
    sid = row.get("sample_id")
    where = f"row {index} (sample_id={sid!r})"

    def bad(fieldname: str, why: str) -> ShardError:
        return ShardError(f"{where}: field {fieldname!r}: {why}")

    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise bad(missing[0], f"missing (required fields missing: {', '.join(missing)})")
    unknown = sorted(set(row) - set(SAMPLE_SCHEMA.names))
    if unknown:
        raise bad(unknown[0], f"not in the schema (unknown fields: {', '.join(unknown)})")
    out = {name: row.get(name) for name in SAMPLE_SCHEMA.names}
    for name in ("sample_id", "source_image_id", "split", "edit_kind", "image_format"):
        if not isinstance(out[name], str) or not out[name]:
            raise bad(name, f"must be a non-empty string, got {out[name]!r}")
    for name in _OPTIONAL:
        if out[name] is not None and not isinstance(out[name], str):
            raise bad(name, f"must be a string or None, got {type(out[name]).__name__}")
    if out["regions"] is not None:
        if not isinstance(out["regions"], (bytes, bytearray, memoryview)) or _png_size(bytes(out["regions"])) is None:
            raise bad("regions", "must be None or PNG bytes")
        out["regions"] = bytes(out["regions"])
    out["image"] = _image_value(out["image"], bad)
    if out["image_format"] not in IMAGE_FORMATS:
        raise bad("image_format", f"{out['image_format']!r} is not one of {IMAGE_FORMATS}")
    if out["split"] not in SPLITS:
        raise bad("split", f"{out['split']!r} is not one of {SPLITS}")
    if out["edit_kind"] not in EDIT_KINDS:
        raise bad("edit_kind", f"{out['edit_kind']!r} is not one of {EDIT_KINDS}")
    if out["edit_kind"] == "original" and out["attribute_edited"] is not None:
        raise bad("attribute_edited", "must be None for an original")
    if out["edit_kind"] != "original" and not out["attribute_edited"]:
        raise bad("attribute_edited", f"must name the attribute for edit_kind={out['edit_kind']!r}")
    for name in ("height", "width"):
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 < int(v) < 2**15:
            raise bad(name, f"must be an int in 1..32767, got {v!r}")
        out[name] = int(v)
    if out["image_format"] == "png":
        size = _png_size(out["image"]["bytes"])
        if size is None:
            raise bad("image", "image_format is 'png' but the bytes are not a PNG")
        if size != (out["height"], out["width"]):
            raise bad("image", f"PNG is {size[0]}x{size[1]} (HxW) but height/width say "
                      f"{out['height']}x{out['width']}")
    ident = out["identity"]
    if isinstance(ident, bool) or not isinstance(ident, (int, np.integer)):
        raise bad("identity", f"must be an int, got {ident!r}")
    out["identity"] = int(ident)
    attrs = np.asarray(out["attributes"]).reshape(-1) if out["attributes"] is not None else None
    if attrs is None or attrs.shape != (NUM_ATTRIBUTES,):
        raise bad("attributes", f"must hold {NUM_ATTRIBUTES} values, got "
                  f"{None if attrs is None else attrs.shape[0]}")
    if not np.isin(attrs, (0, 1)).all():
        raise bad("attributes", f"values must be 0/1, got {sorted(set(attrs.tolist()))}")
    out["attributes"] = attrs.astype(np.int8).tolist()
    return out


def _hf_feature(field: pa.Field) -> dict:
    """A SAMPLE_SCHEMA field's `datasets` feature, as `datasets.Features.to_dict()` writes it."""
    if field.type == IMAGE_TYPE:
        return {"_type": "Image"}
    if pa.types.is_fixed_size_list(field.type):
        return {"feature": _hf_feature(field.type.value_field), "length": field.type.list_size, "_type": "List"}
    return {"dtype": str(field.type), "_type": "Value"}  # string, binary, int8/16/64 are spelled alike


# What `datasets`' own Parquet writer puts under the schema metadata key "huggingface".
HF_METADATA = json.dumps({"info": {"features": {f.name: _hf_feature(f) for f in SAMPLE_SCHEMA}}})


def schema_with_metadata(dataset_metadata: Mapping[str, Any] | None = None) -> pa.Schema:
    """SAMPLE_SCHEMA with faceaug.schema_version, faceaug.dataset (JSON) and huggingface (the features) metadata."""
    return SAMPLE_SCHEMA.with_metadata(
        {
            "faceaug.schema_version": SCHEMA_VERSION,
            "faceaug.dataset": json.dumps(dict(dataset_metadata or {}), sort_keys=True, default=str),
            "huggingface": HF_METADATA,
        }
    )


def image_bytes(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The encoded images of an image column of any schema version: the bytes of the {bytes, path} struct
    (version 2), or the column itself (version 1)."""
    return pc.struct_field(column, "bytes") if pa.types.is_struct(column.type) else column


def upgrade_table(table: pa.Table) -> pa.Table:
    """A table read from a shard of any version in SCHEMAS (all its columns or some), in the current schema:
    a version 1 image column (plain bytes) becomes the {bytes, path} struct with no path. Readers apply it to
    each shard's table before concatenating, so a dataset resumed across an upgrade reads as one."""
    if "image" not in table.column_names or table.schema.field("image").type == IMAGE_TYPE:
        return table
    column = table["image"]
    if column.type != pa.binary():
        raise ShardError(f"image column of type {column.type} is in no schema version this code reads ({', '.join(SCHEMAS)})")
    chunks = [pa.StructArray.from_arrays([c, pa.nulls(len(c), pa.string())], fields=list(IMAGE_TYPE)) for c in column.chunks]
    table = table.set_column(table.column_names.index("image"), SAMPLE_SCHEMA.field("image"),
                             pa.chunked_array(chunks, IMAGE_TYPE))
    return table.replace_schema_metadata({**(table.schema.metadata or {}), b"huggingface": HF_METADATA.encode(),
                                          b"faceaug.schema_version": SCHEMA_VERSION.encode()})


def dataset_metadata_of(schema: pa.Schema) -> dict:
    """The caller's dataset metadata dict stored in a shard's schema ({} if none)."""
    raw = (schema.metadata or {}).get(b"faceaug.dataset")
    return json.loads(raw) if raw else {}


def rows_to_table(rows: Iterable[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Validate row dicts and build a table with SAMPLE_SCHEMA (+ run metadata)."""
    checked = [validate_row(r, i) for i, r in enumerate(rows)]
    seen: dict[str, int] = {}
    for i, r in enumerate(checked):
        if r["sample_id"] in seen:
            raise ShardError(f"row {i} (sample_id={r['sample_id']!r}): field 'sample_id': "
                             f"duplicate of row {seen[r['sample_id']]}")
        seen[r["sample_id"]] = i
    return pa.Table.from_pylist(checked, schema=schema_with_metadata(metadata))


def validate_table(table: pa.Table, metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Conform a table (of any version in SCHEMAS) to SAMPLE_SCHEMA (column order, types) and check images,
    enumerations and uniqueness."""
    missing = [n for n in SAMPLE_SCHEMA.names if n not in table.column_names]
    if missing:
        raise ShardError(f"table lacks columns: {', '.join(missing)}")
    try:
        table = upgrade_table(table.select(SAMPLE_SCHEMA.names)).cast(schema_with_metadata(metadata))
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise ShardError(f"table does not match SAMPLE_SCHEMA: {exc}") from None
    no_image = pc.fill_null(pc.equal(pc.binary_length(image_bytes(table["image"])), 0), True)
    if pc.any(no_image).as_py():
        i = pc.index(no_image, True).as_py()
        raise ShardError(f"row {i} (sample_id={table['sample_id'][i].as_py()!r}): field 'image': "
                         "must be non-empty encoded image bytes")
    for name, allowed in (("edit_kind", EDIT_KINDS), ("split", SPLITS), ("image_format", IMAGE_FORMATS)):
        bad = pc.invert(pc.is_in(table[name], value_set=pa.array(allowed)))
        if pc.any(bad).as_py():
            i = pc.index(bad, True).as_py()
            raise ShardError(f"row {i} (sample_id={table['sample_id'][i].as_py()!r}): field {name!r}: "
                             f"{table[name][i].as_py()!r} is not one of {allowed}")
    if pc.count_distinct(table["sample_id"]).as_py() != table.num_rows:
        raise ShardError("table has duplicate sample_id values")
    return table
