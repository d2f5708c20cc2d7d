"""Alignment of two embeddings of the same cells: FOSCTTM and kNN label transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def _matrix(values: ArrayLike, name: str) -> np.ndarray:
    """``values`` as a finite 2-D float64 array, or a ValueError naming the argument."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array (cells x latent dimensions), got {array.ndim} "
            f"dimension(s) of shape {array.shape}; reshape it or pass the latent matrix."
        )
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` holds NaN or infinite values; drop or fix those cells first.")
    return array


def _labels(values: ArrayLike, n_cells: int, name: str) -> np.ndarray:
    """``values`` as a 1-D array of ``n_cells`` labels, or a ValueError naming the argument."""
    array = np.asarray(values)
    if array.ndim != 1 or array.shape[0] != n_cells:
        raise ValueError(
            f"`{name}` must hold one label per cell ({n_cells}), got shape {array.shape}."
        )
    return array


def foscttm(
    x: ArrayLike,
    y: ArrayLike,
    labels: ArrayLike | None = None,
    chunk_size: int = 2048,
) -> float | tuple[float, float]:
    """Fraction Of Samples Closer Than the True Match (FOSCTTM), averaged over both directions.

    Row ``i`` of ``x`` and row ``i`` of ``y`` are the same cell embedded from two modalities
    (e.g. ``model.get_latent_representation(mdata, modalities=["rna"])`` and the same with
    ``["atac"]`` on paired data). For each cell, FOSCTTM is the fraction of the other side's
    cells that lie closer (euclidean) to it than its own match; 0 means every cell's two
    embeddings are mutual nearest neighbours, 0.5 is a random alignment. Use it to judge
    unpaired (diagonal) integration on data whose pairing is known but hidden from training.

    Parameters
    ----------
    x
        Embeddings of the cells from the first modality, cells x dimensions.
    y
        Embeddings of the same cells, in the same order, from the second modality.
    labels
        Optional cell labels (one per cell, e.g. cell types). With labels, the part of FOSCTTM
        made of cells of *another* label is also returned: what misplaced cell types cost, as
        opposed to the order of cells within a type. (A perfect alignment of types with random
        order within each type scores ``sum_k p_k**2 / 2``, none of it from other types.)
    chunk_size
        Rows of ``x`` compared at a time; bounds memory at ``chunk_size x n_cells`` distances.

    Returns
    -------
    FOSCTTM, or ``(FOSCTTM, part from cells of other labels)`` when ``labels`` is given.

    Raises
    ------
    ValueError
        If ``x`` and ``y`` are not 2-D arrays of the same shape with at least two cells, hold
        non-finite values, or ``labels`` does not hold one label per cell.

    Examples
    --------
    >>> import numpy as np
    >>> import mosaicvi
    >>> z = np.random.default_rng(0).normal(size=(100, 5))
    >>> mosaicvi.metrics.foscttm(z, z)
    0.0
    >>> mosaicvi.metrics.foscttm(z, z[::-1]) > 0.3
    True
    """
    x = _matrix(x, "x")
    y = _matrix(y, "y")
    if x.shape != y.shape:
        raise ValueError(
            f"`x` and `y` must embed the same cells in the same dimensions, got shapes {x.shape} "
            f"and {y.shape}; pass the two modalities' embeddings of the same cells, row-aligned."
        )
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"FOSCTTM needs at least two cells, got {n}.")
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be a positive integer, got {chunk_size}.")
    codes = None if labels is None else pd.factorize(_labels(labels, n, "labels"))[0]
    x_sq = (x**2).sum(1)
    y_sq = (y**2).sum(1)
    true = ((x - y) ** 2).sum(1)
    closer = np.zeros((2, n))  # all closer cells, and those of another label
    for start in range(0, n, chunk_size):
        rows = slice(start, start + chunk_size)
        distances = x_sq[rows, None] + y_sq[None, :] - 2.0 * x[rows] @ y.T
        closer_x = distances < true[rows, None]
        closer_y = distances < true[None, :]
        # A cell's own match is never closer than itself (rounding could say otherwise).
        own = np.arange(start, min(start + chunk_size, n))
        closer_x[own - start, own] = False
        closer_y[own - start, own] = False
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
    reference: ArrayLike,
    reference_labels: ArrayLike,
    query: ArrayLike,
    query_labels: ArrayLike,
    n_neighbors: int = 15,
) -> tuple[float, float]:
    """Accuracy of a k-nearest-neighbour vote that labels query cells from reference cells.

    Each query cell gets the majority label of its ``n_neighbors`` nearest reference cells
    (euclidean) in a shared embedding. Use it to check whether an integration puts cells of the
    same type together across batches or modalities, e.g. from RNA-only to ATAC-only cells in
    the latent space of an unpaired model. Unlike a trained classifier, it needs no fitting and
    reads the embedding's neighbourhoods directly.

    Parameters
    ----------
    reference
        Embeddings of the labelled cells, cells x dimensions.
    reference_labels
        One label per reference cell.
    query
        Embeddings of the cells to label, in the same space as ``reference``.
    query_labels
        The true label of each query cell, to score the vote against.
    n_neighbors
        Neighbours that vote; at most the number of reference cells.

    Returns
    -------
    ``(accuracy, balanced accuracy)``: the fraction of query cells labelled correctly, and the
    mean over true labels of that fraction (each label counts equally, whatever its size).

    Raises
    ------
    ValueError
        If the embeddings are not 2-D with the same number of dimensions, the labels do not hold
        one label per cell, or ``n_neighbors`` is not between 1 and the number of reference cells.

    Examples
    --------
    >>> import numpy as np
    >>> import mosaicvi
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat(["a", "b"], 50)
    >>> z = rng.normal(size=(100, 2)) + np.where(labels == "a", 0.0, 10.0)[:, None]
    >>> mosaicvi.metrics.knn_label_transfer(z[::2], labels[::2], z[1::2], labels[1::2])
    (1.0, 1.0)
    """
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.neighbors import KNeighborsClassifier

    reference = _matrix(reference, "reference")
    query = _matrix(query, "query")
    if reference.shape[1] != query.shape[1]:
        raise ValueError(
            f"`reference` and `query` must live in the same space, got {reference.shape[1]} and "
            f"{query.shape[1]} dimensions; embed both with the same model."
        )
    reference_labels = _labels(reference_labels, reference.shape[0], "reference_labels")
    query_labels = _labels(query_labels, query.shape[0], "query_labels")
    if not 1 <= n_neighbors <= reference.shape[0]:
        raise ValueError(
            f"`n_neighbors` must be between 1 and the number of reference cells "
            f"({reference.shape[0]}), got {n_neighbors}."
        )
    classifier = KNeighborsClassifier(n_neighbors=n_neighbors).fit(reference, reference_labels)
    predicted = classifier.predict(query)
    accuracy = float(np.mean(predicted == query_labels))
    return accuracy, float(balanced_accuracy_score(query_labels, predicted))
