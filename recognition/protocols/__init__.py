"""Evaluation protocols: which test pairs are compared, each a registered, self-contained unit.

    PROTOCOLS.get("celeba")          # the class; built per run from the run's test data
    @PROTOCOLS.register("my-protocol")
    class MyProtocol(Protocol): ...   # one new file in this package (plus a test) adds a protocol

A protocol turns the run's test data (`TestData`: the CelebA-format test images with their
identities and 40 labels, the LFW images, pairs and, when supplied, attribute scores) into one or
more named pair sets (`PairSet`). Every arm and seed is scored on the same pair sets, by cosine
similarity of the verifier's embeddings; the evaluation stage computes the metrics, intervals and
paired differences (recognition/experiment.py). Third-party protocols arrive through the
`faceaug.protocols` entry-point group.

The pure functions of the two standard protocols (`celeba_targets`, `celeba_scores`, `lfw_scores`,
`lfw_tenfold`, `check_disjoint`) live in `_pairs.py` and are re-exported here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from pipeline.registry import Registry
from recognition.protocols._pairs import celeba_scores, celeba_targets, check_disjoint, lfw_scores, lfw_tenfold

TEST_SETS = ("celeba", "lfw")  # the embedding sets a pair set can index: CelebA-format test originals, LFW images


@dataclass
class TestData:
    """The run's test images, in the order of the verifiers' embedding caches."""

    celeba_ids: np.ndarray  # sample ids of the CelebA-format test originals
    celeba_identity: np.ndarray  # int64 identity per image
    celeba_attributes: np.ndarray | None  # N x 40 0/1 labels (None when not loaded)
    lfw_ids: np.ndarray  # LFW image paths ('Name/Name_0001.jpg')
    lfw_pairs: list  # pipeline.lfw.Pair of pairs.txt
    lfw_attributes: object | None = None  # pipeline.lfw_attributes.LFWAttributes, when the tree has the file
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PairSet:
    """Pairs of one test set, scored by cosine similarity: explicit (left[i], right[i]) rows, or every
    query against every target (`grid`, stored as two index vectors, never as all pairs)."""

    test_set: str
    labels: np.ndarray
    groups: np.ndarray | None  # resampling clusters per pair: (n,), (n, 2), or None = each pair its own
    left: np.ndarray | None = None
    right: np.ndarray | None = None
    grid: tuple[np.ndarray, np.ndarray] | None = None  # (query rows, target rows)
    folds: np.ndarray | None = None  # fold per pair for a k-fold accuracy (LFW)
    description: str = ""

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        from recognition.protocols._pairs import l2_normalise

        emb = l2_normalise(embeddings)
        if self.grid is not None:
            queries, targets = self.grid
            return (emb[queries] @ emb[targets].T).ravel()
        out = np.empty(self.left.size, dtype=np.float32)
        for start in range(0, self.left.size, 1 << 16):  # chunked: never all pairs' vectors at once
            end = start + (1 << 16)
            out[start:end] = np.einsum("ij,ij->i", emb[self.left[start:end]], emb[self.right[start:end]])
        return out

    @property
    def genuine(self) -> int:
        return int(np.count_nonzero(self.labels))

    @property
    def impostors(self) -> int:
        return int(self.labels.size - np.count_nonzero(self.labels))


class Protocol(ABC):
    """A way to compare test images. Subclasses set `name`, `title` and build their pair sets from the test data."""

    name: ClassVar[str]
    title: ClassVar[str]

    def __init__(self, cfg, data: TestData):
        self.cfg = cfg
        self.data = data

    @abstractmethod
    def pair_sets(self) -> dict[str, PairSet]:
        """Named pair sets; a protocol with one set names it after itself."""


PROTOCOLS: Registry[type[Protocol]] = Registry("evaluation protocol", entry_points="faceaug.protocols",
                                               builtins="recognition.protocols")

__all__ = ["PROTOCOLS", "TEST_SETS", "PairSet", "Protocol", "TestData", "celeba_scores", "celeba_targets", "check_disjoint",
           "lfw_scores", "lfw_tenfold"]
