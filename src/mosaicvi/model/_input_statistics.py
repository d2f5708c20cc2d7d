"""Statistics fitted on the training cells that the encoders' input transforms and decoders need."""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.extmath import randomized_svd

logger = logging.getLogger(__name__)

#: Cells used to fit the LSI loadings at most (a random subset beyond that).
MAX_LSI_FIT_CELLS = 50_000
#: Rows copied at a time when counting non-zeros over a subset of rows.
_ROW_CHUNK = 65_536

# Every function below takes the whole modality matrix and ``rows``, a boolean mask of the cells
# that measured it (``None``: all rows). Indexing the matrix by the mask would copy most of the
# data set (at 10^6 cells, the largest transient of model set-up); only the LSI fit copies rows,
# at most MAX_LSI_FIT_CELLS of them.


def _rows_mask(counts: sp.csr_matrix, rows: np.ndarray | None) -> np.ndarray:
    return np.ones(counts.shape[0], dtype=bool) if rows is None else np.asarray(rows, dtype=bool)


def column_nonzeros(counts: sp.csr_matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """Number of cells among ``rows`` in which each feature is non-zero."""
    counts = sp.csr_matrix(counts)
    if rows is None:
        return np.bincount(counts.indices, minlength=counts.shape[1])
    rows = _rows_mask(counts, rows)
    total = np.zeros(counts.shape[1], dtype=np.int64)
    for start in range(0, counts.shape[0], _ROW_CHUNK):
        chunk = counts[start : start + _ROW_CHUNK][rows[start : start + _ROW_CHUNK]]
        total += np.bincount(chunk.indices, minlength=counts.shape[1])
    return total


def column_sums(counts: sp.csr_matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-feature total over ``rows`` (float64), without copying the matrix."""
    weights = _rows_mask(counts, rows).astype(np.float64)
    return np.asarray(sp.csr_matrix(counts).T @ weights).ravel()


def library_reference(
    measured: sp.csr_matrix, likelihood: str, rows: np.ndarray | None = None
) -> float:
    """Median library of the cells that measured a modality (open features for Bernoulli)."""
    counts = sp.csr_matrix(measured)
    if likelihood == "bernoulli":
        per_cell = np.diff(counts.indptr)
    else:
        per_cell = np.asarray(counts.sum(1)).ravel()
    return float(np.median(per_cell[_rows_mask(counts, rows)]))


def inverse_document_frequency(
    measured: sp.csr_matrix, rows: np.ndarray | None = None
) -> np.ndarray:
    """``n_cells / (1 + number of cells in which the feature is non-zero)`` per feature."""
    n_cells = measured.shape[0] if rows is None else int(np.count_nonzero(rows))
    return n_cells / (1.0 + column_nonzeros(measured, rows))


def binary_tfidf(counts: sp.csr_matrix, idf: np.ndarray, scale: float = 1e4) -> sp.csr_matrix:
    """``log1p(scale * idf / n_open)`` at the non-zeros: what :class:`~mosaicvi.nn.TfIdf` computes."""
    counts = sp.csr_matrix(counts)
    n_open = np.maximum(np.diff(counts.indptr), 1)
    values = scale / np.repeat(n_open, np.diff(counts.indptr)) * idf[counts.indices]
    return sp.csr_matrix((np.log1p(values), counts.indices, counts.indptr), shape=counts.shape)


def fit_lsi(
    measured: sp.csr_matrix,
    idf: np.ndarray,
    n_components: int = 50,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Loadings of latent semantic indexing on the binarised TF-IDF of the training cells.

    A randomized SVD of ``binary_tfidf(measured)`` with ``n_components + 1`` components; the first
    component, which follows sequencing depth, is dropped (as Signac recommends) and the right
    singular vectors are divided by their singular values, so ``tfidf @ loadings`` are the cells'
    whitened LSI coordinates. Beyond :data:`MAX_LSI_FIT_CELLS` cells a random subset is used.

    Parameters
    ----------
    measured
        Counts (cells x features) of the training cells that measured the modality.
    idf
        Inverse document frequency per feature (:func:`inverse_document_frequency`).
    n_components
        Number of LSI components kept.
    seed
        Seed of the cell subset and of the randomized SVD.
    rows
        Boolean mask of the rows of ``measured`` to use (``None``: all).

    Returns
    -------
    np.ndarray
        ``(n_features, n_components)`` float32 loadings.
    """
    candidates = np.flatnonzero(_rows_mask(measured, rows))
    n_cells, n_features = len(candidates), measured.shape[1]
    if n_components < 1:
        raise ValueError(f"`n_lsi_components` must be at least 1, got {n_components}.")
    if n_components + 1 >= min(n_cells, n_features):
        raise ValueError(
            f"`n_lsi_components` ({n_components}) must be below min(cells, features) - 1 = "
            f"{min(n_cells, n_features) - 1} of the cells that measured the modality; lower it."
        )
    rng = np.random.default_rng(seed)
    if n_cells > MAX_LSI_FIT_CELLS:
        candidates = np.sort(rng.choice(candidates, MAX_LSI_FIT_CELLS, replace=False))
    if rows is not None or n_cells > MAX_LSI_FIT_CELLS:
        measured = sp.csr_matrix(measured)[candidates]
    _, singular_values, right = randomized_svd(
        binary_tfidf(measured, idf), n_components + 1, n_iter=7, random_state=seed
    )
    # Components beyond the rank of the data (few or empty cells) have ~0 singular values: they
    # get zero loadings instead of a division by ~0, which made the LSI input of cells NaN.
    kept = singular_values[1:]
    usable = kept > singular_values[0] * 1e-6
    inverse = np.divide(1.0, kept, out=np.zeros_like(kept), where=usable)
    return (right[1:].T * inverse).astype(np.float32)


def input_transform_params(
    transform: str,
    measured: sp.csr_matrix,
    n_lsi_components: int,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Fitted parameters of the input transform called ``transform`` (empty when it has none).

    Fitted on the ``rows`` (boolean mask) of ``measured``, all rows when ``None``. For ``"lsi"``,
    ``n_lsi_components`` is lowered (with a log message) when the modality has too few measured
    cells or features for it.
    """
    if transform not in ("tfidf", "lsi", "tfidf_lsi"):
        return {}
    idf = inverse_document_frequency(measured, rows)
    params = {"idf": torch.as_tensor(idf, dtype=torch.float32)}
    if transform in ("lsi", "tfidf_lsi"):
        n_cells = measured.shape[0] if rows is None else int(np.count_nonzero(rows))
        shape = (n_cells, measured.shape[1])
        n_components = min(n_lsi_components, min(shape) - 2)
        if n_components < n_lsi_components:
            logger.info(
                "Only %d cells x %d features measured: using %d LSI components instead of %d.",
                *shape,
                max(n_components, 0),
                n_lsi_components,
            )
        if n_components < 1:
            raise ValueError(
                f"The 'lsi' input needs at least 3 measured cells and features, got "
                f"{shape}; use input_transforms={{...: 'tfidf'}} instead."
            )
        params["loadings"] = torch.as_tensor(fit_lsi(measured, idf, n_components, seed, rows))
    return params


def initial_decoder_bias(
    measured: sp.csr_matrix, likelihood: str, rows: np.ndarray | None = None
) -> torch.Tensor:
    """Per-feature decoder bias that reproduces the data's average profile when ``eta = 0``.

    Bernoulli: ``logit`` of the fraction of cells in which the feature is open (smoothed), which
    the decoder's library offset keeps at the reference library; NB / ZINB: ``log`` of the
    feature's share of all counts (the softmax logits of the average cell). Starting there, the
    latent space is not spent on the average profile (with a zero bias every ATAC peak starts at
    probability 1/2, and a shared "everything closed" direction of ``z`` was learnt before the
    bias caught up, placing the cells of that modality far from the others). Computed over the
    ``rows`` (boolean mask) of ``measured``, all rows when ``None``.
    """
    n_cells = measured.shape[0] if rows is None else int(np.count_nonzero(rows))
    if likelihood == "bernoulli":
        fraction = (column_nonzeros(measured, rows) + 0.5) / (n_cells + 1.0)
        return torch.as_tensor(np.log(fraction) - np.log1p(-fraction), dtype=torch.float32)
    totals = column_sums(measured, rows)
    share = (totals + 0.5) / (totals.sum() + 0.5 * totals.size)
    return torch.as_tensor(np.log(share), dtype=torch.float32)
