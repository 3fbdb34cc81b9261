"""Pairs that cross an attribute: is it the same person when one photo has glasses and the other not?

For one attribute on a set of test images with identities and labels:

* **differ**: genuine pairs (two images of one identity) whose images differ in the attribute, and
  impostor pairs (two identities) whose images also differ in it (MeGlass scores gallery without
  glasses against probes with glasses in the same way), so neither a genuine nor an impostor pair
  can be recognised by the attribute difference alone;
* **agree**: genuine and impostor pairs whose two images agree in the attribute (both with, or both
  without).

Impostor pairs are matched on the identity-level attributes given (sex, as CALFW matches sex and
ethnicity), so the task is not solved by reading them. Genuine pairs are all within-identity image
pairs; impostor pairs are drawn without replacement from all eligible ones (at most `max_impostors`,
seeded). Each pair carries both identities as its resampling clusters (`recognition.bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPLITS = ("differ", "agree")


@dataclass(frozen=True)
class PairIndex:
    """Pairs of images by position: left[i], right[i], genuine flag, and both images' identities."""

    left: np.ndarray
    right: np.ndarray
    labels: np.ndarray
    groups: np.ndarray  # n x 2 identities

    def __len__(self) -> int:
        return int(self.left.size)

    @property
    def genuine(self) -> int:
        return int(self.labels.sum())

    @property
    def impostors(self) -> int:
        return int((~self.labels).sum())


def within_identity_pairs(identities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (i, j), i < j, of images of the same identity, in a deterministic order."""
    identities = np.asarray(identities)
    order = np.argsort(identities, kind="stable")
    sorted_ids = identities[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    ends = np.r_[starts[1:], sorted_ids.size]
    left, right = [], []
    for a, b in zip(starts, ends):
        members = np.sort(order[a:b])
        if members.size < 2:
            continue
        i, j = np.triu_indices(members.size, 1)
        left.append(members[i])
        right.append(members[j])
    if not left:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(left).astype(np.int64), np.concatenate(right).astype(np.int64)


def sample_impostors(identities: np.ndarray, eligible_left: np.ndarray, eligible_right: np.ndarray, match: np.ndarray,
                     n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` distinct unordered impostor pairs (i from eligible_left, j from eligible_right, different
    identities, equal `match` key), drawn uniformly from all such pairs by rejection; fewer if there are fewer."""
    left_pool, right_pool = np.flatnonzero(eligible_left), np.flatnonzero(eligible_right)
    if left_pool.size == 0 or right_pool.size == 0 or n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    # An upper bound on how many pairs exist, to stop when they run out.
    possible = sum(int(((identities[left_pool] != identities[j]) & (match[left_pool] == match[j])).sum())
                   for j in right_pool) if left_pool.size * right_pool.size <= 4_000_000 else None
    target = n if possible is None else min(n, possible if not np.array_equal(left_pool, right_pool) else possible // 2)
    seen: set[tuple[int, int]] = set()
    left, right = [], []
    attempts = 0
    while len(left) < target and attempts < 50 * max(target, 1000):
        batch = max(1024, 2 * (target - len(left)))
        i = left_pool[rng.integers(0, left_pool.size, batch)]
        j = right_pool[rng.integers(0, right_pool.size, batch)]
        attempts += batch
        keep = (identities[i] != identities[j]) & (match[i] == match[j])
        for a, b in zip(i[keep].tolist(), j[keep].tolist()):
            key = (a, b) if a < b else (b, a)
            if key in seen:
                continue
            seen.add(key)
            left.append(a)
            right.append(b)
            if len(left) >= target:
                break
    return np.asarray(left, np.int64), np.asarray(right, np.int64)


def cross_attribute_pairs(identities: np.ndarray, values: np.ndarray, match: np.ndarray, *, max_impostors: int,
                          seed: int) -> dict[str, PairIndex]:
    """{"differ": ..., "agree": ...} for one attribute (module docstring). `values`: the attribute per image
    (0/1); `match`: the per-image key impostors must share (e.g. the identity's sex)."""
    identities = np.asarray(identities)
    values = np.asarray(values).astype(bool)
    match = np.asarray(match)
    gl, gr = within_identity_pairs(identities)
    rng = np.random.default_rng([seed, 0xC405])
    out = {}
    for split in SPLITS:
        if split == "differ":
            keep = values[gl] != values[gr]
            il, ir = sample_impostors(identities, values, ~values, match, max_impostors, rng)
        else:
            keep = values[gl] == values[gr]
            # both with, or both without: split the impostor budget in proportion to the two pools
            with_n, without_n = int(values.sum()), int((~values).sum())
            share = with_n ** 2 / max(with_n ** 2 + without_n ** 2, 1)
            a = sample_impostors(identities, values, values, match, int(round(max_impostors * share)), rng)
            b = sample_impostors(identities, ~values, ~values, match, max_impostors - a[0].size, rng)
            il, ir = np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]])
        left = np.concatenate([gl[keep], il])
        right = np.concatenate([gr[keep], ir])
        labels = np.r_[np.ones(int(keep.sum()), bool), np.zeros(il.size, bool)]
        out[split] = PairIndex(left, right, labels, np.stack([identities[left], identities[right]], 1))
    return out


def identity_majority(identities: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per image, the majority value of its identity (ties -> 1): an identity-level label such as sex."""
    identities = np.asarray(identities)
    values = np.asarray(values).astype(np.int64)
    uniq, inverse = np.unique(identities, return_inverse=True)
    totals = np.bincount(inverse, weights=values, minlength=uniq.size)
    counts = np.bincount(inverse, minlength=uniq.size)
    return (2 * totals >= counts)[inverse].astype(np.int64)
