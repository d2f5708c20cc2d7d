"""Non-learned reference points for the diagonal SNARE-seq benchmark.

- :func:`joint_pca_gene_activity`: the naive unpaired baseline. ATAC is summed onto genes through
  the gene-peak link matrix ("gene activity"), both modalities are log-normalised and z-scored
  separately, and one PCA is fitted on the RNA cells' expression and the ATAC cells' activity.
- :func:`ridge_pairing_reference`: *uses the hidden pairing*, so it is not a competitor but a
  gauge of how much of a cell's RNA state a linear map can read from its ATAC profile in this
  data set: a ridge regression from ATAC LSI to RNA principal components, cross-fitted over the
  two sample halves (fit on the paired cells of samples 1-6, predict samples 7-12, and the other
  way round), so every cell's prediction is out of sample.

- :func:`supervised_label_references`: also use hidden information: logistic regressions on
  ATAC LSI and on RNA PCA trained with the cell-type labels of samples 1-6 (for ATAC, on the
  profiles the split hides), scored on the cells of samples 7-12: how well a linear classifier
  that sees labelled cells of that modality does across these samples.

The first two return the same dictionary as the model runners of ``tasks/diagonal.py``.
"""

from __future__ import annotations

import time

import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score


def _log_normalize(counts: sp.spmatrix) -> np.ndarray:
    counts = sp.csr_matrix(counts, dtype=np.float64)
    size = np.maximum(np.asarray(counts.sum(1)).ravel(), 1.0)
    normalized = sp.diags(1e4 / size) @ counts
    normalized.data = np.log1p(normalized.data)
    return normalized.toarray()


def _zscore(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (x - reference.mean(0)) / (reference.std(0) + 1e-6)


def _assemble(paired: mudata.MuData, diagonal: mudata.MuData, z_rna, z_atac, seconds) -> dict:
    """Training latent: each cell's code from the modality it kept in the diagonal split."""
    z = np.empty_like(z_rna)
    rows = paired.obs_names.get_indexer(diagonal.obs_names)
    kept_rna = diagonal.obs_names.isin(diagonal["rna"].obs_names)
    z[kept_rna] = z_rna[rows[kept_rna]]
    z[~kept_rna] = z_atac[rows[~kept_rna]]
    return {"z": z, "z_rna": z_rna, "z_atac": z_atac, "seconds": seconds, "epochs": np.nan}


def joint_pca_gene_activity(
    diagonal: mudata.MuData, paired: mudata.MuData, links: sp.spmatrix, n_comps: int = 30
) -> dict:
    """Joint PCA of RNA expression and ATAC gene activity (genes x peaks ``links``)."""
    start = time.perf_counter()
    rna = _log_normalize(paired["rna"].X)
    open_peaks = sp.csr_matrix(paired["atac"].X, dtype=np.float64)
    open_peaks.data[:] = 1.0
    activity = _log_normalize(open_peaks @ sp.csr_matrix(links, dtype=np.float64).T)
    rna_cells = paired.obs_names.isin(diagonal["rna"].obs_names)
    atac_cells = paired.obs_names.isin(diagonal["atac"].obs_names)
    rna = _zscore(rna, rna[rna_cells])
    activity = _zscore(activity, activity[atac_cells])
    pca = PCA(n_comps, random_state=0).fit(np.vstack([rna[rna_cells], activity[atac_cells]]))
    return _assemble(
        paired, diagonal, pca.transform(rna), pca.transform(activity), time.perf_counter() - start
    )


def _binary_tfidf(counts: sp.spmatrix) -> sp.csr_matrix:
    """``log1p(1e4 / open peaks of the cell * IDF of the peak)`` on the open peaks (MosaicVI's)."""
    counts = sp.csr_matrix(counts)
    per_cell = np.diff(counts.indptr)
    idf = counts.shape[0] / (1.0 + np.bincount(counts.indices, minlength=counts.shape[1]))
    values = 1e4 / np.repeat(np.maximum(per_cell, 1), per_cell) * idf[counts.indices]
    return sp.csr_matrix((np.log1p(values), counts.indices, counts.indptr), shape=counts.shape)


def _atac_lsi(paired: mudata.MuData, n_comps: int = 100) -> np.ndarray:
    """Standardised LSI (components 2 to ``n_comps + 1``) of every cell's ATAC."""
    peaks = sp.csr_matrix(paired["atac"].X)
    tfidf = _binary_tfidf(peaks)
    lsi = TruncatedSVD(n_comps + 1, random_state=0).fit_transform(tfidf)[:, 1:]
    return _zscore(lsi, lsi)


def supervised_label_references(
    diagonal: mudata.MuData, paired: mudata.MuData, label_key: str
) -> pd.DataFrame:
    """Accuracy and balanced accuracy of classifiers trained on labelled cells (see above).

    One row per input: ATAC LSI (100 components) and RNA PCA (50 components of the
    log-normalised expression), each a logistic regression fitted on the cells of the diagonal
    split's RNA samples and scored on the cells of its ATAC samples.
    """
    labels = paired.obs[label_key].astype(str).to_numpy()
    query = paired.obs_names.isin(diagonal["atac"].obs_names)
    rna_pcs = PCA(50, random_state=0).fit_transform(_log_normalize(paired["rna"].X))
    inputs = {
        "logistic regression on ATAC LSI": _atac_lsi(paired),
        "logistic regression on RNA PCA": rna_pcs,
    }
    rows = {}
    for name, x in inputs.items():
        classifier = LogisticRegression(C=0.1, max_iter=3000).fit(x[~query], labels[~query])
        predicted = classifier.predict(x[query])
        rows[name] = {
            "accuracy": float(np.mean(predicted == labels[query])),
            "balanced accuracy": float(balanced_accuracy_score(labels[query], predicted)),
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(
        "supervised reference (uses hidden labels)"
    )


def ridge_pairing_reference(
    diagonal: mudata.MuData, paired: mudata.MuData, n_comps: int = 30, alpha: float = 100.0
) -> dict:
    """Cross-fitted ridge from ATAC LSI (100 components) to RNA PCA: uses the true pairing."""
    start = time.perf_counter()
    rna_cells = paired.obs_names.isin(diagonal["rna"].obs_names)
    rna = _log_normalize(paired["rna"].X)
    z_rna = PCA(n_comps, random_state=0).fit(rna[rna_cells]).transform(rna)
    lsi = _atac_lsi(paired)
    z_atac = np.empty_like(z_rna)
    for fit_on in (rna_cells, ~rna_cells):
        model = Ridge(alpha=alpha).fit(lsi[fit_on], z_rna[fit_on])
        z_atac[~fit_on] = model.predict(lsi[~fit_on])
    return _assemble(paired, diagonal, z_rna, z_atac, time.perf_counter() - start)
