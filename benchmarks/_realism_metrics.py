"""Reconstruction quality and realism of imputed profiles (issue 9: output discriminator, priors).

``realism_scores(model, truth, cells, seed)`` returns, for a trained MosaicVI on the SNARE-seq
mosaic:

- ``recon NLL <modality>``: the validation cells' reconstruction NLL of each modality (mean over
  the cells that measured it, one posterior sample, summed over features);
- for the hidden modality of the single-modality cells (RNA of ATAC-only cells, ATAC of RNA-only
  cells), compared with the true hidden profiles:

  - ``<mod> real-vs-imputed AUC``: a logistic regression on 50 SVD components of log-normalised
    profiles, fitted on half of the cells (their real and imputed profiles) and scored on the
    other half; 0.5 = imputations indistinguishable from real profiles, 1 = always told apart.
    Imputed profiles are *draws*: one posterior sample of ``z`` per cell, decoded (batch: the
    average over the batches that measured the modality), then counts drawn from the decoded
    distribution (NB at the cell's true library with the dispersion averaged over those batches;
    Bernoulli for ATAC). Decoded means would be told apart by their smoothness alone;
  - ``<mod> feature mean r``: Pearson correlation, over features, of the per-feature mean of the
    log-normalised imputed and real profiles;
  - ``<mod> feature log2 var ratio``: median over features (variable in the real data) of
    ``log2(var imputed / var real)`` of the log-normalised profiles (0 = same spread; negative =
    imputations too uniform across cells).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def reconstruction_scores(model) -> dict[str, float]:
    """Validation reconstruction NLL per modality (mean over the cells that measured it)."""
    indices = np.sort(np.asarray(model.validation_indices))
    errors = model.get_reconstruction_error(indices=indices, return_mean=False)
    cells = model.adata.obs_names[indices]
    scores = {}
    for m in model.modalities:
        measured = cells.isin(model.adata.mod[m].obs_names)
        values = np.asarray(errors[m].cpu() if hasattr(errors[m], "cpu") else errors[m])
        scores[f"recon NLL {m}"] = float(values[measured].mean())
    return scores


def _log_normalized(x: sp.csr_matrix) -> sp.csr_matrix:
    """``log1p(1e4 * x / library)`` per row, sparse."""
    x = sp.csr_matrix(x, dtype=np.float64)
    library = np.asarray(x.sum(1)).ravel()
    scale = np.divide(1e4, library, out=np.zeros_like(library), where=library > 0)
    out = sp.csr_matrix(x.multiply(scale[:, None]))
    out.data = np.log1p(out.data)
    return out


def _imputed_draws(model, modality: str, indices: np.ndarray, rng) -> sp.csr_matrix:
    """Counts drawn from the model (its likelihood with dispersion, at the median library) for
    cells ``indices``; the comparison log-normalises every profile, so the library matters little.
    """
    torch.manual_seed(int(rng.integers(2**31)))
    draws = model.posterior_predictive_sample(indices=indices, modality=modality)
    return sp.csr_matrix(draws.astype(np.float32))


def _realism(real: sp.csr_matrix, imputed: sp.csr_matrix, seed: int) -> dict[str, float]:
    real, imputed = _log_normalized(real), _log_normalized(imputed)
    n = real.shape[0]
    rng = np.random.default_rng(seed)
    train = np.zeros(n, dtype=bool)
    train[rng.permutation(n)[: n // 2]] = True
    stacked = sp.vstack([real, imputed]).tocsr()
    is_real = np.r_[np.ones(n), np.zeros(n)]
    in_train = np.r_[train, train]
    svd = TruncatedSVD(50, random_state=seed).fit(stacked[in_train])
    features = svd.transform(stacked)
    features /= features[in_train].std(0) + 1e-12
    classifier = LogisticRegression(max_iter=2000).fit(features[in_train], is_real[in_train])
    auc = roc_auc_score(is_real[~in_train], classifier.decision_function(features[~in_train]))
    mean_real = np.asarray(real.mean(0)).ravel()
    mean_imputed = np.asarray(imputed.mean(0)).ravel()
    var_real = np.asarray(real.multiply(real).mean(0)).ravel() - mean_real**2
    var_imputed = np.asarray(imputed.multiply(imputed).mean(0)).ravel() - mean_imputed**2
    variable = var_real > 1e-8
    ratio = np.log2(np.maximum(var_imputed[variable], 1e-12) / var_real[variable])
    return {
        "real-vs-imputed AUC": float(auc),
        "feature mean r": float(np.corrcoef(mean_real, mean_imputed)[0, 1]),
        "feature log2 var ratio": float(np.median(ratio)),
    }


def realism_scores(model, truth: dict, cells: dict, seed: int = 0) -> dict[str, float]:
    """Reconstruction NLL per modality and the realism of the imputed hidden modalities.

    ``truth``: ``{"atac": true ATAC of the RNA-only cells, "rna": true RNA of the ATAC-only
    cells}``; ``cells``: ``{"rna_only": positions, "atac_only": positions}`` (as
    ``tasks/family.py``).
    """
    rng = np.random.default_rng(seed)
    scores = reconstruction_scores(model)
    for modality, hidden_in in (("rna", "atac_only"), ("atac", "rna_only")):
        real = sp.csr_matrix(truth[modality])
        if model.module.likelihoods[modality].binary:  # draws are open / closed
            real = (real > 0).astype(np.float32)
        imputed = _imputed_draws(model, modality, cells[hidden_in], rng)
        label = modality.upper()
        scores.update({f"{label} {k}": v for k, v in _realism(real, imputed, seed).items()})
    return scores
