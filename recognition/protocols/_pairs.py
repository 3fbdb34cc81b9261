"""Evaluation protocols: which pairs are compared, and how LFW's 10-fold accuracy is read.

CelebA (SaGAN paper, section 4.3): on the test identities, one randomly chosen image per
identity is the *target* and the rest are *queries*; every query is compared with every
target (genuine = same identity), and the result is reported as a ROC.

LFW: the standard 10-fold protocol on `pairs.txt` (6,000 pairs, 300 genuine + 300 impostor per
fold); for each fold the decision threshold is chosen on the other nine folds.

`check_disjoint` is called on every run so a test identity that leaked into training is an
error, never a silently optimistic number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from recognition.metrics import accuracy_at_threshold, best_threshold


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("an embedding is all zeros; cosine similarity is undefined")
    return x / norms


# --- CelebA: one target per identity, the rest queries -----------------------------------------


def celeba_targets(identities: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(target_index, query_index) into `identities` (one identity label per test image).

    For every identity one image, drawn uniformly with `np.random.default_rng(seed)`, is its
    target; all its other images are queries. An identity with a single image contributes a
    target only: it has no genuine query, but its target still serves as an impostor target for
    every other identity's queries. Both index arrays are sorted ascending. The draw depends only
    on `seed` and the `identities` array (same array, same seed, same split).
    """
    identities = np.asarray(identities).ravel()
    if identities.size == 0:
        raise ValueError("no test images")
    rng = np.random.default_rng(seed)
    # Sort by identity, and within an identity by a random key: the first of each run is a
    # uniformly drawn image of that identity.
    order = np.lexsort((rng.random(identities.size), identities))
    sorted_ids = identities[order]
    first = np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1]))
    target_index = np.sort(order[first])
    query_index = np.sort(order[~first])
    return target_index, query_index


def celeba_scores(
    query_emb: np.ndarray, target_emb: np.ndarray, query_ids: np.ndarray, target_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every query against every target: (scores, labels, query_identity), each flat, row-major
    (pair q * n_targets + t is query q with target t).

    scores: cosine similarity, float32 (embeddings are L2-normalised here even if they already
    are); labels: True when the query and target identities match; query_identity: the query's
    identity for each pair, the resampling unit of `recognition.statistics`' bootstrap.
    Memory: 11k queries x 2k targets = 22M pairs is about 22M x (4 + 1 + 8) bytes = 290 MB.
    """
    query_ids = np.asarray(query_ids).ravel()
    target_ids = np.asarray(target_ids).ravel()
    if len(query_emb) != query_ids.size or len(target_emb) != target_ids.size:
        raise ValueError("one identity per embedding is required (queries and targets)")
    if query_emb.ndim != 2 or target_emb.ndim != 2 or query_emb.shape[1] != target_emb.shape[1]:
        raise ValueError(f"embeddings must be 2-D with equal width: {query_emb.shape} vs {target_emb.shape}")
    scores = (l2_normalise(query_emb) @ l2_normalise(target_emb).T).ravel()
    labels = (query_ids[:, None] == target_ids[None, :]).ravel()
    query_identity = np.repeat(query_ids, target_ids.size)
    return scores, labels, query_identity


# --- LFW: the standard 10-fold protocol ---------------------------------------------------------


def lfw_scores(
    emb_by_image: Mapping[str, np.ndarray] | tuple[Mapping[str, int], np.ndarray], pairs: Sequence
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, labels, folds) for LFW pairs (objects with .left, .right, .same, .fold, e.g.
    `pipeline.lfw.Pair`). Embeddings are given either as {relative path: vector} or as
    ({relative path: row}, matrix). Scores are cosine similarities (float32); pair i's
    bootstrap group is simply i. Raises KeyError naming missing images."""
    if isinstance(emb_by_image, tuple):
        index, matrix = emb_by_image
        matrix = l2_normalise(np.asarray(matrix))
    else:
        keys = list(emb_by_image)
        index = {k: i for i, k in enumerate(keys)}
        matrix = l2_normalise(np.stack([np.asarray(emb_by_image[k]) for k in keys])) if keys else None
    missing = sorted({p for pair in pairs for p in (pair.left, pair.right) if p not in index})
    if missing:
        raise KeyError(f"{len(missing)} LFW images have no embedding, e.g. {missing[:5]}")
    if not pairs:
        raise ValueError("no LFW pairs")
    left = np.fromiter((index[p.left] for p in pairs), dtype=np.int64, count=len(pairs))
    right = np.fromiter((index[p.right] for p in pairs), dtype=np.int64, count=len(pairs))
    scores = np.einsum("ij,ij->i", matrix[left], matrix[right])
    labels = np.fromiter((bool(p.same) for p in pairs), dtype=bool, count=len(pairs))
    folds = np.fromiter((int(p.fold) for p in pairs), dtype=np.int64, count=len(pairs))
    return scores, labels, folds


def lfw_tenfold(scores, labels, folds) -> dict:
    """Standard LFW accuracy: for each fold, the best-accuracy threshold of the *other* folds
    (`metrics.best_threshold`) is applied to the held-out fold.

    Returns dict(accuracy_mean, accuracy_std, per_fold_accuracy, per_fold_threshold, folds).
    `accuracy_std` is NumPy's default population std (ddof=0) across folds, as in the common
    LFW evaluation code (facenet / insightface `np.std(accuracy)`).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    folds = np.asarray(folds).ravel()
    if not scores.size == labels.size == folds.size:
        raise ValueError("scores, labels and folds must have equal length")
    fold_ids = np.unique(folds)
    if fold_ids.size < 2:
        raise ValueError(f"need at least 2 folds, got {fold_ids.size}")
    accuracies, thresholds = [], []
    for f in fold_ids:
        held_out = folds == f
        threshold, _ = best_threshold(scores[~held_out], labels[~held_out])
        thresholds.append(threshold)
        accuracies.append(accuracy_at_threshold(scores[held_out], labels[held_out], threshold))
    acc = np.asarray(accuracies)
    return {
        "accuracy_mean": float(acc.mean()),
        "accuracy_std": float(acc.std()),
        "per_fold_accuracy": acc.tolist(),
        "per_fold_threshold": [float(t) for t in thresholds],
        "folds": [int(f) if np.issubdtype(fold_ids.dtype, np.integer) else f for f in fold_ids],
    }


# --- identity leakage --------------------------------------------------------------------------


def check_disjoint(train_identities: Iterable, test_identities: Iterable, what: str) -> None:
    """Raise ValueError if any identity is in both sets, naming the first few (sorted).

    `what` names the comparison in the message, e.g. "CelebA train vs CelebA test".
    """
    train = set(np.asarray(list(train_identities)).ravel().tolist())
    test = set(np.asarray(list(test_identities)).ravel().tolist())
    overlap = train & test
    if overlap:
        shown = sorted(overlap, key=str)[:5]
        more = f" and {len(overlap) - len(shown)} more" if len(overlap) > len(shown) else ""
        raise ValueError(
            f"{what}: {len(overlap)} identities are in both training and test data: "
            f"{', '.join(map(str, shown))}{more}"
        )
