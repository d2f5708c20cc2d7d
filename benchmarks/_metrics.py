"""Scores shared by the benchmark scripts: scib-metrics, FOSCTTM and kNN label transfer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import KNeighborsClassifier


def scib_scores(
    obs: pd.DataFrame,
    embeddings: dict[str, np.ndarray],
    batch_key: str,
    label_key: str,
    pre_integrated: str | None = None,
    n_jobs: int = 2,
    score_pre_integrated: bool = True,
) -> pd.DataFrame:
    """scib-metrics Benchmarker scores (not min-max scaled), one row per embedding.

    ``pre_integrated`` names the embedding the batch metrics that need an unintegrated reference
    (PCR comparison) compare against; default: the first embedding. With
    ``score_pre_integrated=False`` that reference is used but not scored itself (its scores do
    not depend on the others, so a caller can score it once and cache them).
    """
    from scib_metrics.benchmark import Benchmarker

    scored = AnnData(obs=obs[[batch_key, label_key]].astype(str).astype("category"))
    for name, z in embeddings.items():
        scored.obsm[name] = np.asarray(z, dtype=np.float32)
    reference = pre_integrated or next(iter(embeddings))
    bench = Benchmarker(
        scored,
        batch_key=batch_key,
        label_key=label_key,
        embedding_obsm_keys=[
            name for name in embeddings if score_pre_integrated or name != reference
        ],
        pre_integrated_embedding_obsm_key=reference,
        n_jobs=n_jobs,
    )
    bench.benchmark()
    scores = bench.get_results(min_max_scale=False)
    return scores.drop(index="Metric Type", errors="ignore").astype(float)


def foscttm(
    x: np.ndarray, y: np.ndarray, chunk: int = 2048, labels: np.ndarray | None = None
) -> float | tuple[float, float]:
    """Fraction Of Samples Closer Than the True Match, averaged over both directions.

    Row ``i`` of ``x`` and row ``i`` of ``y`` are the same cell seen through two modalities. For
    each cell, the fraction of cells of the other side that are closer (euclidean) to it than its
    own match; 0 is a perfect alignment, 0.5 a random one. With ``labels`` (one per cell), also
    returns the part of it made of cells whose label differs from the cell's own: what a wrong
    alignment of cell types costs, as opposed to the order of cells within a type (a perfect
    alignment of types, random within each, scores ``sum_k p_k^2 / 2``, all of it same-type).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}.")
    n = x.shape[0]
    codes = None if labels is None else pd.factorize(np.asarray(labels))[0]
    x_sq = (x**2).sum(1)
    y_sq = (y**2).sum(1)
    true = ((x - y) ** 2).sum(1)
    closer = np.zeros((2, n))  # all closer cells, those of another label
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        distances = x_sq[rows, None] + y_sq[None, :] - 2.0 * x[rows] @ y.T
        closer_x = distances < true[rows, None]
        closer_y = distances < true[None, :]
        closer[0, rows] += closer_x.sum(1)
        closer[0] += closer_y.sum(0)
        if codes is not None:
            other = codes[rows, None] != codes[None, :]
            closer[1, rows] += (closer_x & other).sum(1)
            closer[1] += (closer_y & other).sum(0)
    fractions = closer.mean(1) / (2.0 * (n - 1))
    if codes is None:
        return float(fractions[0])
    return float(fractions[0]), float(fractions[1])


def knn_label_transfer(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
    n_neighbors: int = 15,
) -> tuple[float, float]:
    """Accuracy and balanced accuracy of a kNN majority vote from reference to query cells."""
    classifier = KNeighborsClassifier(n_neighbors=n_neighbors).fit(reference, reference_labels)
    predicted = classifier.predict(query)
    accuracy = float(np.mean(predicted == np.asarray(query_labels)))
    return accuracy, float(balanced_accuracy_score(query_labels, predicted))
