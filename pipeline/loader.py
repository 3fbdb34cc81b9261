"""PyTorch reader of committed shards, feeding verifier training.

Item format (a dict, so DataLoader's default collate batches it):

    image       float32 tensor 3xHxW in [-1, 1]   (pipeline.images.to_model_range)
    label       int (collated to int64)           class index from `label_map`
    identity    int                               the dataset's identity id
    attributes  int8 tensor [40]                  0/1, after the edit
    sample_id   str
    + any extra scalar columns named in `columns` (e.g. "edit_kind", "source_image_id")

Work is split by (shard, row group): every epoch the units are permuted with
(seed, epoch) — identically in every worker and rank — and unit i goes to the
global worker i mod (world_size * num_workers), so each sample is yielded
exactly once per epoch. Rows of a worker's units pass through a shuffle buffer
that mixes several shards. Only committed shards (ShardStore.entries) are read.

Each source may carry its own edit_kind filter: `paths` items are store paths
(filtered by `edit_kinds`) or `(path, edit_kinds)` pairs, e.g. the aug-all arm

    ShardImageDataset([("runs/x/shards/originals", None),
                       ("runs/x/shards/aug-eyeglasses", ("added", "removed")), ...])

With persistent_workers=True a DataLoader keeps the dataset copies it made, so
set_epoch() would not reach them; use the default (persistent_workers=False) or
pass the epoch another way.

Shards are read as ShardStore reads them (`ShardStore.open_shard`): Arrow's own files, or a remote
shard's bytes in Arrow-owned memory, never a Python file object (see `pipeline.shards._arrow_buffer`
for the abort at interpreter exit that avoids). A worker keeps the last few shards it read open.
Shards of any schema version are read (`pipeline.samples.image_bytes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from pipeline.images import decode_rgb, to_model_range
from pipeline.shards import EDIT_KINDS, NUM_ATTRIBUTES, ShardEntry, ShardStore, image_bytes

_BASE_COLUMNS = ("sample_id", "image", "identity", "attributes")
# Shards a worker keeps open between units: enough for runs of units from one shard, few enough that the
# file descriptors (local) or the whole shards in memory (remote stores, see ShardStore.open_shard) stay bounded.
_OPEN_SHARDS = 8


def _check_kinds(kinds: Sequence[str] | None) -> None:
    if kinds is None:
        return
    if isinstance(kinds, str):
        raise ValueError(f"edit_kinds must be a sequence of kinds, not the string {kinds!r}")
    unknown = set(kinds) - set(EDIT_KINDS)
    if unknown:
        raise ValueError(f"unknown edit_kinds {sorted(unknown)}; choose from {EDIT_KINDS}")


@dataclass(frozen=True)
class _Unit:
    """One row group of one shard: the smallest piece of work given to a worker."""

    store: int  # index into ShardImageDataset.stores
    shard: str  # ShardEntry.name
    row_group: int
    rows: int


class ShardImageDataset(IterableDataset):
    """Samples from one or more shard stores (e.g. baseline + eyeglasses), filtered and shuffled."""

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike | tuple[str | os.PathLike, Sequence[str] | None]],
        *,
        split: str | None = "train",
        edit_kinds: Sequence[str] | None = None,
        columns: Sequence[str] = (),
        shuffle: bool = True,
        seed: int = 0,
        shuffle_buffer: int = 2048,
        label_map: Mapping[int, int] | None = None,
        flip: bool = False,
        image_size: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        if not paths:
            raise ValueError("ShardImageDataset needs at least one store path")
        _check_kinds(edit_kinds)
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.split = split
        self.edit_kinds = tuple(edit_kinds) if edit_kinds is not None else None
        # Per-source edit_kind filters: a bare path takes `edit_kinds`, a pair its own.
        self.paths: list[str] = []
        self.source_kinds: list[tuple[str, ...] | None] = []
        for item in paths:
            if isinstance(item, tuple) and len(item) == 2 and not isinstance(item[1], (str, os.PathLike)):
                path, kinds = item
                _check_kinds(kinds)
                kinds = tuple(kinds) if kinds is not None else None
            else:
                path, kinds = item, self.edit_kinds
            self.paths.append(str(path))
            self.source_kinds.append(kinds)
        self.extra_columns = tuple(c for c in columns if c not in _BASE_COLUMNS)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.flip = flip
        self.image_size = image_size
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

        self.stores = [ShardStore(p) for p in self.paths]
        self._entries: list[dict[str, ShardEntry]] = []
        self.units: list[_Unit] = []
        identities: set[int] = set()
        self._len = 0
        for si, store in enumerate(self.stores):
            entries = store.entries()
            if not entries:
                raise ValueError(f"{store.path}: no committed shards")
            self._entries.append({e.name: e for e in entries})
            for e in entries:
                # One cheap projected read of the small columns gives the exact
                # filtered length and the identities for the label map.
                with store.open_shard(e) as f:
                    t = pq.read_table(f, columns=["identity", "split", "edit_kind"])
                kept = list(enumerate(e.row_groups))
                if self._filtering(si):
                    passing = self._mask(t, si).to_numpy(zero_copy_only=False).astype(bool)
                    t = t.filter(pa.array(passing))
                    # A row group of which nothing passes the filters is not part of the stream, so a store
                    # that gained rows of other splits only (more test identities, in new row groups or new
                    # shards) yields the same samples in the same order, and trains the same verifier.
                    passed = np.concatenate([[0], np.cumsum(passing)])
                    per_group = np.diff(passed[np.concatenate([[0], np.cumsum(e.row_groups)]).astype(int)])
                    kept = [(g, n) for (g, n), m in zip(kept, per_group) if m > 0]
                self.units.extend(_Unit(si, e.name, g, n) for g, n in kept)
                self._len += t.num_rows
                identities.update(pc.unique(t["identity"]).to_pylist())
        if label_map is None:
            label_map = {ident: i for i, ident in enumerate(sorted(identities))}
        else:
            missing = sorted(identities - set(label_map))
            if missing:
                raise ValueError(f"label_map lacks {len(missing)} identities present in the data, "
                                 f"e.g. {missing[:5]}")
        self.label_map = dict(label_map)

    # -- sizes -------------------------------------------------------------
    def __len__(self) -> int:
        """Samples per epoch over all ranks and workers (after the split/edit_kind filters)."""
        return self._len

    @property
    def num_classes(self) -> int:
        return max(self.label_map.values()) + 1 if self.label_map else 0

    def set_epoch(self, epoch: int) -> None:
        """Change the shuffle (shard order, row-group assignment, buffer) for a new epoch."""
        self.epoch = int(epoch)

    # -- iteration ---------------------------------------------------------
    def _filtering(self, store: int) -> bool:
        return self.split is not None or self.source_kinds[store] is not None

    def _mask(self, t: pa.Table, store: int) -> pa.ChunkedArray:
        mask = None
        kinds = self.source_kinds[store]
        if self.split is not None:
            mask = pc.equal(t["split"], self.split)
        if kinds is not None:
            m = pc.is_in(t["edit_kind"], value_set=pa.array(kinds))
            mask = m if mask is None else pc.and_(mask, m)
        return mask

    def _my_units(self) -> tuple[list[_Unit], int]:
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        me = self.rank * nworkers + wid
        total = self.world_size * nworkers
        order = np.arange(len(self.units))
        if self.shuffle:
            # The same permutation in every worker/rank: they partition one list.
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.units))
        return [self.units[i] for i in order[me::total]], me

    def _read_unit(self, unit: _Unit, files: dict) -> list[tuple]:
        """Rows of one row group after filtering, as tuples of Python values (one conversion per column)."""
        store = self.stores[unit.store]
        entry = self._entries[unit.store][unit.shard]
        key = (unit.store, unit.shard)
        if key not in files:
            if len(files) >= _OPEN_SHARDS:
                files.pop(next(iter(files)))[1].close()  # the one opened first
            source = store.open_shard(entry)
            files[key] = (pq.ParquetFile(source), source)
        cols = list(dict.fromkeys([*_BASE_COLUMNS, *self.extra_columns,
                                   *(["split"] if self.split is not None else []),
                                   *(["edit_kind"] if self.source_kinds[unit.store] is not None else [])]))
        t = files[key][0].read_row_group(unit.row_group, columns=cols)
        if self._filtering(unit.store):
            t = t.filter(self._mask(t, unit.store))
        if t.num_rows == 0:
            return []
        attrs = t["attributes"].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        attrs = attrs.astype(np.int8, copy=False).reshape(-1, NUM_ATTRIBUTES)
        shard = store.url_of(entry)
        columns = [t["sample_id"].to_pylist(), image_bytes(t["image"]).to_pylist(), t["identity"].to_pylist(),
                   list(attrs), [shard] * t.num_rows, *(t[c].to_pylist() for c in self.extra_columns)]
        return list(zip(*columns))

    def _item(self, row: tuple, rng: np.random.Generator) -> dict:
        sample_id, data, identity, attrs, shard = row[:5]
        arr = decode_rgb(data, f"{shard}: sample {sample_id!r}")  # errors name shard + sample
        if self.image_size is not None and arr.shape[:2] != (self.image_size, self.image_size):
            raise ValueError(f"{shard}: sample {sample_id!r} is {arr.shape[0]}x{arr.shape[1]}, "
                             f"expected image_size {self.image_size}x{self.image_size}")
        if self.flip and rng.random() < 0.5:
            arr = arr[:, ::-1]
        item = {
            "image": torch.from_numpy(np.ascontiguousarray(to_model_range(arr))),
            "label": self.label_map[identity],
            "identity": identity,
            "attributes": torch.from_numpy(attrs.copy()),
            "sample_id": sample_id,
        }
        for name, value in zip(self.extra_columns, row[5:]):
            item[name] = value
        return item

    def fingerprint(self) -> str:
        """sha256 of what this dataset yields, wherever it is stored: its units in order with their sizes and,
        for each, every row's identity and image bytes after the filters. The order of a shuffled epoch depends
        only on those and the seed, so two datasets with equal fingerprints yield the same samples in the same
        order (e.g. the no-edit control of two attributes: the same copies, only the edit metadata differs)."""
        import hashlib

        h = hashlib.sha256(f"{self.split}|{self.image_size}|{self.flip}|{len(self.units)}".encode())
        files: dict = {}
        try:
            for unit in self.units:
                rows = self._read_unit(unit, files)
                h.update(f"|unit {len(rows)}".encode())
                for row in rows:
                    h.update(int(row[2]).to_bytes(8, "little", signed=True))
                    h.update(hashlib.sha256(row[1]).digest())
        finally:
            for _, source in files.values():
                source.close()
        return h.hexdigest()

    def interleave(self, rank: int, world_size: int) -> "ShardImageDataset":
        """Distributed training that must see the single-process sample stream: every rank walks the *whole*
        stream in the same order (no split of units by rank) and decodes only the positions p with
        p % world_size == rank, yielding None for the others (cheap placeholders that keep positions aligned).
        The union of the ranks' samples at any stretch of the stream is then exactly the single-process one.
        Needs num_workers=0 and flip=False (a flip would draw from the per-sample stream)."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        if self.flip:
            raise ValueError("interleave needs flip=False: flipping draws per sample from the stream's generator")
        self.take = (rank, world_size)
        return self

    def __iter__(self) -> Iterator[dict | None]:
        units, me = self._my_units()
        # Per-worker stream for the buffer and flips; distinct per worker, rank and epoch.
        rng = np.random.default_rng([self.seed, self.epoch, me, 1])
        files: dict = {}
        take = getattr(self, "take", None)
        position = 0

        def emit(row: tuple):
            nonlocal position
            mine = take is None or position % take[1] == take[0]
            position += 1
            return self._item(row, rng) if mine else None

        try:
            if not self.shuffle:
                for unit in units:
                    for row in self._read_unit(unit, files):
                        yield emit(row)
                return
            # Shuffle buffer holding encoded rows (small); decode on the way out.
            buf: list[tuple] = []
            for unit in units:
                for row in self._read_unit(unit, files):
                    if len(buf) < self.shuffle_buffer:
                        buf.append(row)
                        continue
                    j = int(rng.integers(len(buf)))
                    out, buf[j] = buf[j], row
                    yield emit(out)
            for j in rng.permutation(len(buf)):
                yield emit(buf[j])
        finally:
            for _, source in files.values():
                source.close()
