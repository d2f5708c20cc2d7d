"""Modality-aware pieces of differential features: defaults, effect sizes, raw statistics.

scvi-tools' Bayes-factor machinery assumes one RNA matrix in which every row is a measured cell.
Here pseudocounts come from the features a group's *measuring* cells never express and raw
statistics are computed only over cells that measured the modality. Each likelihood's defaults
(effect size, delta, library) are its :meth:`~mosaicvi.nn._likelihoods.Likelihood.differential_defaults`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from mosaicvi.nn._column_statistics import measured_counts, measuring_cells

if TYPE_CHECKING:
    from collections.abc import Callable


def probability_difference(scales1: np.ndarray, scales2: np.ndarray, pseudocounts) -> np.ndarray:
    """Effect size ``p1 - p2`` (pseudocounts are ignored)."""
    return scales1 - scales2


def log_fold_change(scales1: np.ndarray, scales2: np.ndarray, pseudocounts) -> np.ndarray:
    """Effect size ``log2(x1 + pseudocounts) - log2(x2 + pseudocounts)``."""
    return np.log2(scales1 + pseudocounts) - np.log2(scales2 + pseudocounts)


def estimated_pseudocounts(
    scales1: np.ndarray,
    scales2: np.ndarray,
    unexpressed1: np.ndarray,
    unexpressed2: np.ndarray,
    quantile: float = 0.9,
    floor: float = 1e-5,
) -> float:
    """ScVI's pseudocount: a high quantile of the largest decoded value of unexpressed features.

    ``unexpressed1``/``unexpressed2`` flag the features whose raw mean over a group's *measuring*
    cells is below a threshold; their decoded values are artefacts, and adding this offset shrinks
    their log fold changes towards zero. At least ``floor``.
    """
    offsets = [floor]
    for scales, unexpressed in ((scales1, unexpressed1), (scales2, unexpressed2)):
        if unexpressed.any():
            offsets.append(float(np.quantile(scales.max(0)[unexpressed], quantile)))
    return max(offsets)


def lfc_with_estimated_pseudocounts(
    unexpressed1: np.ndarray, unexpressed2: np.ndarray, record: dict
) -> Callable[[np.ndarray, np.ndarray, float], np.ndarray]:
    """A log-fold ``change_fn`` for scvi-tools that estimates its pseudocounts from the samples.

    scvi-tools calls ``change_fn(scales1, scales2, pseudocounts)`` once to test and once with
    ``1e-3 * pseudocounts`` to describe the fold change; pass ``pseudocounts=1.0`` and this
    function scales its own estimate (kept in ``record["pseudocounts"]``) by that factor.
    """

    def change_fn(scales1, scales2, factor):
        if "pseudocounts" not in record:
            record["pseudocounts"] = estimated_pseudocounts(
                scales1, scales2, unexpressed1, unexpressed2
            )
        return log_fold_change(scales1, scales2, record["pseudocounts"] * factor)

    return change_fn


def raw_statistics(
    counts: sp.csr_matrix,
    measured: np.ndarray,
    idx1: np.ndarray,
    idx2: np.ndarray,
    feature_mask: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Raw means, non-zero fractions and normalised means of two groups, over measuring cells.

    Parameters
    ----------
    counts
        Cells x features counts of one modality, aligned to all cells (zero rows for cells that
        did not measure it).
    measured
        Boolean mask of the cells that measured the modality.
    idx1, idx2
        Boolean masks of the two groups. Cells outside ``measured`` never enter a statistic; a
        group with no measuring cell gets NaN.
    feature_mask
        ``(batch code of each cell, (n_batch, n_features) table)`` of a modality with feature
        masks: each feature's statistics are over the group's cells whose batch measured it
        (NaN where none did), and libraries over the measured features.

    Returns
    -------
    ``raw_mean1/2``, ``non_zeros_proportion1/2``, ``raw_normalized_mean1/2`` (counts per 10,000
    of each cell's library) and ``n_measured1/2`` (number of measuring cells of each group).
    """
    stats = {}
    for suffix, group in (("1", idx1), ("2", idx2)):
        rows = np.flatnonzero(np.asarray(group, dtype=bool) & np.asarray(measured, dtype=bool))
        if len(rows) == 0:
            nan = np.full(counts.shape[1], np.nan)
            mean = nonzero = normalized = nan
        else:
            x = sp.csr_matrix(counts[rows])
            n_cells = np.full(x.shape[1], float(len(rows)))
            if feature_mask is not None:
                codes, table = feature_mask
                x = measured_counts(x, codes[rows], table)
                n_cells = measuring_cells(codes[rows], np.ones(len(rows), bool), table)
                n_cells = np.where(n_cells > 0, n_cells, np.nan)
            library = np.asarray(x.sum(1)).ravel()
            scaling = np.divide(1e4, library, out=np.zeros_like(library), where=library > 0)
            mean = np.asarray(x.sum(0)).ravel() / n_cells
            nonzero = np.bincount(x.indices[x.data != 0], minlength=x.shape[1]) / n_cells
            normalized = np.asarray(x.multiply(scaling[:, None]).sum(0)).ravel() / n_cells
        stats[f"raw_mean{suffix}"] = mean
        stats[f"non_zeros_proportion{suffix}"] = nonzero
        stats[f"raw_normalized_mean{suffix}"] = normalized
        stats[f"n_measured{suffix}"] = np.full(counts.shape[1], len(rows))
    return stats
