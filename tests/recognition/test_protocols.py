"""Evaluation protocols: CelebA one-target-per-identity, LFW 10-fold, identity disjointness."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.lfw import Pair
from recognition.protocols import celeba_scores, celeba_targets, check_disjoint, lfw_scores, lfw_tenfold

# 5 identities with 4, 3, 1, 2, 5 images, interleaved as in a real image list.
IDENTITIES = np.array([7, 3, 7, 9, 3, 7, 12, 12, 5, 5, 5, 7, 3, 5, 5])
SIZES = {7: 4, 3: 3, 9: 1, 12: 2, 5: 5}


def test_celeba_targets_one_per_identity_rest_queries():
    target, query = celeba_targets(IDENTITIES, seed=0)
    assert sorted(IDENTITIES[target].tolist()) == sorted(SIZES)  # exactly one target per identity
    assert np.intersect1d(target, query).size == 0
    assert np.array_equal(np.sort(np.concatenate((target, query))), np.arange(IDENTITIES.size))
    assert query.size == sum(n - 1 for n in SIZES.values())
    assert 9 not in IDENTITIES[query]  # single-image identity: a target only


def test_celeba_targets_deterministic_per_seed_and_varies_across_seeds():
    a = celeba_targets(IDENTITIES, seed=3)
    b = celeba_targets(IDENTITIES, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    draws = {tuple(celeba_targets(IDENTITIES, seed=s)[0]) for s in range(20)}
    assert len(draws) > 5


def test_celeba_targets_uniform_within_identity():
    ids = np.zeros(4, dtype=int)
    counts = np.bincount([celeba_targets(ids, seed=s)[0][0] for s in range(800)], minlength=4)
    assert counts.min() > 150  # expected 200 each


def test_celeba_scores_counts_and_values():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(IDENTITIES.size, 8)).astype(np.float32) * 3.0  # not normalised
    target, query = celeba_targets(IDENTITIES, seed=1)
    scores, labels, qid = celeba_scores(emb[query], emb[target], IDENTITIES[query], IDENTITIES[target])
    n_q, n_t = query.size, target.size
    assert scores.shape == labels.shape == qid.shape == (n_q * n_t,)
    assert labels.sum() == sum(n - 1 for n in SIZES.values())  # 3 + 2 + 0 + 1 + 4 = 10
    assert (~labels).sum() == n_q * n_t - 10
    # pair q * n_t + t is query q against target t, cosine similarity
    q, t = 4, 2
    a, b = emb[query[q]], emb[target[t]]
    assert scores[q * n_t + t] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-5)
    assert labels[q * n_t + t] == (IDENTITIES[query[q]] == IDENTITIES[target[t]])
    assert np.all(qid.reshape(n_q, n_t) == IDENTITIES[query][:, None])
    assert np.all(np.abs(scores) <= 1 + 1e-6)


def test_lfw_scores_from_dict_and_matrix():
    emb = {"A/A_0001.jpg": np.array([1.0, 0.0]), "A/A_0002.jpg": np.array([2.0, 2.0]), "B/B_0001.jpg": np.array([0.0, 5.0])}
    pairs = [Pair("A/A_0001.jpg", "A/A_0002.jpg", True, 0, 2), Pair("A/A_0001.jpg", "B/B_0001.jpg", False, 1, 3)]
    scores, labels, folds = lfw_scores(emb, pairs)
    np.testing.assert_allclose(scores, [np.sqrt(0.5), 0.0], atol=1e-6)
    assert labels.tolist() == [True, False] and folds.tolist() == [0, 1]
    index = {k: i for i, k in enumerate(emb)}
    scores2, _, _ = lfw_scores((index, np.stack(list(emb.values()))), pairs)
    np.testing.assert_allclose(scores2, scores)
    with pytest.raises(KeyError, match="C/C_0001.jpg"):
        lfw_scores(emb, [Pair("A/A_0001.jpg", "C/C_0001.jpg", False, 0, 4)])


def _tenfold_example():
    """10 folds of 4 pairs. A clean fold has genuine scores [0.8, 0.9], impostors [0.1, 0.2].
    Fold 0 has a hard impostor (0.85 instead of 0.2), fold 1 a hard genuine (0.15 instead of
    0.8), fold 2 a low genuine (0.4 instead of 0.8).

    Training on nine folds, the best-accuracy midpoints are:
      * fold 2 in training: 0.3 (between 0.2 and 0.4) - it accepts the 0.4 genuine, and every
        other candidate misclassifies at least as many pairs (0.6 loses the 0.4 genuine, 0.175
        accepts the 0.2 impostors);
      * fold 2 held out: 0.5 (between 0.2 and 0.8).
    Held-out accuracies: fold 0 at 0.3 accepts the 0.85 impostor -> 3/4; fold 1 at 0.3 rejects
    the 0.15 genuine -> 3/4; fold 2 at 0.5 rejects the 0.4 genuine -> 3/4; the 7 clean folds 1.
    """
    scores, labels, folds = [], [], []
    for f in range(10):
        genuine, impostor = [0.8, 0.9], [0.1, 0.2]
        if f == 0:
            impostor = [0.1, 0.85]
        if f == 1:
            genuine = [0.15, 0.9]
        if f == 2:
            genuine = [0.4, 0.9]
        scores += genuine + impostor
        labels += [True, True, False, False]
        folds += [f] * 4
    return np.array(scores), np.array(labels), np.array(folds)


def test_lfw_tenfold_known_answer():
    r = lfw_tenfold(*_tenfold_example())
    expected = [0.75, 0.75, 0.75] + [1.0] * 7
    np.testing.assert_allclose(r["per_fold_accuracy"], expected)
    np.testing.assert_allclose(r["per_fold_threshold"], [0.3, 0.3, 0.5] + [0.3] * 7)
    assert r["accuracy_mean"] == pytest.approx(0.925)
    # population std (ddof=0): sqrt((3 * 0.175^2 + 7 * 0.075^2) / 10)
    assert r["accuracy_std"] == pytest.approx(np.sqrt((3 * 0.175**2 + 7 * 0.075**2) / 10))
    assert r["folds"] == list(range(10))


def test_check_disjoint():
    check_disjoint([1, 2, 3], np.array([4, 5]), "CelebA train vs test")
    with pytest.raises(ValueError, match=r"CelebA train vs test: 2 identities .*: 3, 5"):
        check_disjoint([1, 2, 3, 5], np.array([3, 4, 5]), "CelebA train vs test")
    with pytest.raises(ValueError, match="and 4 more"):
        check_disjoint(range(20), range(11, 30), "x")
