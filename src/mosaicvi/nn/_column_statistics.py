"""Per-feature statistics of a CSR count matrix over a subset of its rows, without copying it.

Every function takes the whole modality matrix and ``rows``, a boolean mask of the cells that
measured it (``None``: all rows). Indexing the matrix by the mask would copy most of the data set
(at 10^6 cells, the largest transient of model set-up).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Rows copied at a time when counting non-zeros over a subset of rows.
_ROW_CHUNK = 65_536


def rows_mask(counts: sp.csr_matrix, rows: np.ndarray | None) -> np.ndarray:
    """``rows`` as a boolean mask over the rows of ``counts`` (all rows when ``None``)."""
    return np.ones(counts.shape[0], dtype=bool) if rows is None else np.asarray(rows, dtype=bool)


def column_nonzeros(counts: sp.csr_matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """Number of cells among ``rows`` in which each feature is non-zero."""
    counts = sp.csr_matrix(counts)
    if rows is None:
        return np.bincount(counts.indices, minlength=counts.shape[1])
    rows = rows_mask(counts, rows)
    total = np.zeros(counts.shape[1], dtype=np.int64)
    for start in range(0, counts.shape[0], _ROW_CHUNK):
        chunk = counts[start : start + _ROW_CHUNK][rows[start : start + _ROW_CHUNK]]
        total += np.bincount(chunk.indices, minlength=counts.shape[1])
    return total


def column_sums(counts: sp.csr_matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """Per-feature total over ``rows`` (float64), without copying the matrix."""
    weights = rows_mask(counts, rows).astype(np.float64)
    return np.asarray(sp.csr_matrix(counts).T @ weights).ravel()


def measured_counts(
    counts: sp.csr_matrix, batch_codes: np.ndarray, table: np.ndarray
) -> sp.csr_matrix:
    """``counts`` without the entries each cell's batch did not measure (``table[batch]``)."""
    counts = sp.csr_matrix(counts)
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    keep = table[batch_codes[rows], counts.indices]
    coo = sp.coo_matrix((counts.data[keep], (rows[keep], counts.indices[keep])), counts.shape)
    return coo.tocsr()


def measuring_cells(batch_codes: np.ndarray, rows: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Per feature, the number of cells of ``rows`` (boolean) whose batch measured it."""
    cells_per_batch = np.bincount(batch_codes[rows], minlength=table.shape[0])
    return cells_per_batch @ table.astype(np.int64)
