"""Scores of imputed modalities against the hidden true ones (cells x features)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def auroc(scores: np.ndarray, truth: np.ndarray, n_bins: int = 2**20) -> float:
    """AUROC of ``scores`` for the binary ``truth`` over all entries (cells x features).

    Exact up to ties within ``n_bins`` bins of the logit of ``scores`` (probabilities, clipped to
    [1e-7, 1 - 1e-7]); linear in the number of entries, so 10^8 entries fit in memory.
    """
    positives = np.zeros(n_bins)
    negatives = np.zeros(n_bins)
    truth = sp.csr_matrix(truth)
    for start in range(0, scores.shape[0], 256):
        rows = slice(start, start + 256)
        p = np.clip(np.asarray(scores[rows], dtype=np.float64), 1e-7, 1 - 1e-7)
        logit = np.log(p) - np.log1p(-p)
        bins = np.clip(((logit + 16.2) / 32.4 * n_bins).astype(np.int64), 0, n_bins - 1)
        is_open = truth[rows].toarray() > 0
        positives += np.bincount(bins[is_open], minlength=n_bins)
        negatives += np.bincount(bins[~is_open], minlength=n_bins)
    below = np.cumsum(negatives) - negatives
    wins = (positives * (below + 0.5 * negatives)).sum()
    return float(wins / (positives.sum() * negatives.sum()))


def columnwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` with the same column of ``y`` (NaN if constant)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean(0)
    y = y - y.mean(0)
    denominator = np.sqrt((x**2).sum(0) * (y**2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (x * y).sum(0) / denominator, np.nan)


def per_feature_pearson(pred: np.ndarray, truth, chunk: int = 2048) -> np.ndarray:
    """Pearson correlation over cells for every feature (column), in chunks of features."""
    truth = sp.csc_matrix(truth)
    out = np.empty(pred.shape[1])
    for start in range(0, pred.shape[1], chunk):
        cols = slice(start, start + chunk)
        out[cols] = columnwise_pearson(pred[:, cols], truth[:, cols].toarray())
    return out


def log_normalized(counts, target_sum: float = 1e4) -> np.ndarray:
    """``log1p(target_sum * x / library)`` per cell (dense)."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    library = np.asarray(counts.sum(1)).ravel()
    scaling = np.divide(target_sum, library, out=np.zeros_like(library), where=library > 0)
    return np.log1p(counts.multiply(scaling[:, None]).toarray())


def expression_scores(proportions: np.ndarray, counts) -> dict[str, float]:
    """Pearson between log-normalised imputed proportions and log-normalised true counts.

    ``per cell``: mean over cells of the correlation across genes; ``per gene``: mean over genes
    (expressed in some cell) of the correlation across cells.
    """
    imputed = np.log1p(1e4 * np.asarray(proportions, dtype=np.float64))
    true = log_normalized(counts)
    per_cell = columnwise_pearson(imputed.T, true.T)
    per_gene = columnwise_pearson(imputed, true)
    return {
        "RNA Pearson per cell": float(np.nanmean(per_cell)),
        "RNA Pearson per gene": float(np.nanmean(per_gene)),
    }


def accessibility_scores(probabilities: np.ndarray, counts) -> dict[str, float]:
    """AUROC over cells x peaks and mean per-peak Pearson of imputed probabilities vs open peaks."""
    binary = sp.csr_matrix(counts)
    binary.data = (binary.data > 0).astype(np.float32)
    per_peak = per_feature_pearson(probabilities, binary)
    return {
        "ATAC AUROC": auroc(probabilities, binary),
        "ATAC Pearson per peak": float(np.nanmean(per_peak)),
    }
