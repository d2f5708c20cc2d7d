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


def library_reference(measured: sp.csr_matrix, likelihood: str) -> float:
    """Median library of the cells that measured a modality (open features for Bernoulli)."""
    if likelihood == "bernoulli":
        return float(np.median(np.diff(measured.indptr)))
    return float(np.median(np.asarray(measured.sum(1)).ravel()))


def inverse_document_frequency(measured: sp.csr_matrix) -> np.ndarray:
    """``n_cells / (1 + number of cells in which the feature is non-zero)`` per feature."""
    document_frequency = np.bincount(measured.indices, minlength=measured.shape[1])
    return measured.shape[0] / (1.0 + document_frequency)


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

    Returns
    -------
    np.ndarray
        ``(n_features, n_components)`` float32 loadings.
    """
    n_cells, n_features = measured.shape
    if n_components < 1:
        raise ValueError(f"`n_lsi_components` must be at least 1, got {n_components}.")
    if n_components + 1 >= min(n_cells, n_features):
        raise ValueError(
            f"`n_lsi_components` ({n_components}) must be below min(cells, features) - 1 = "
            f"{min(n_cells, n_features) - 1} of the cells that measured the modality; lower it."
        )
    rng = np.random.default_rng(seed)
    if n_cells > MAX_LSI_FIT_CELLS:
        measured = measured[np.sort(rng.choice(n_cells, MAX_LSI_FIT_CELLS, replace=False))]
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
    transform: str, measured: sp.csr_matrix, n_lsi_components: int, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Fitted parameters of the input transform called ``transform`` (empty when it has none).

    For ``"lsi"``, ``n_lsi_components`` is lowered (with a log message) when the modality has too
    few measured cells or features for it.
    """
    if transform not in ("tfidf", "lsi", "tfidf_lsi"):
        return {}
    idf = inverse_document_frequency(measured)
    params = {"idf": torch.as_tensor(idf, dtype=torch.float32)}
    if transform in ("lsi", "tfidf_lsi"):
        n_components = min(n_lsi_components, min(measured.shape) - 2)
        if n_components < n_lsi_components:
            logger.info(
                "Only %d cells x %d features measured: using %d LSI components instead of %d.",
                *measured.shape,
                max(n_components, 0),
                n_lsi_components,
            )
        if n_components < 1:
            raise ValueError(
                f"The 'lsi' input needs at least 3 measured cells and features, got "
                f"{measured.shape}; use input_transforms={{...: 'tfidf'}} instead."
            )
        params["loadings"] = torch.as_tensor(fit_lsi(measured, idf, n_components, seed))
    return params


def initial_decoder_bias(measured: sp.csr_matrix, likelihood: str) -> torch.Tensor:
    """Per-feature decoder bias that reproduces the data's average profile when ``eta = 0``.

    Bernoulli: ``logit`` of the fraction of cells in which the feature is open (smoothed), which
    the decoder's library offset keeps at the reference library; NB / ZINB: ``log`` of the
    feature's share of all counts (the softmax logits of the average cell). Starting there, the
    latent space is not spent on the average profile (with a zero bias every ATAC peak starts at
    probability 1/2, and a shared "everything closed" direction of ``z`` was learnt before the
    bias caught up, placing the cells of that modality far from the others).
    """
    n_cells = measured.shape[0]
    if likelihood == "bernoulli":
        document_frequency = np.bincount(measured.indices, minlength=measured.shape[1])
        fraction = (document_frequency + 0.5) / (n_cells + 1.0)
        return torch.as_tensor(np.log(fraction) - np.log1p(-fraction), dtype=torch.float32)
    totals = np.asarray(measured.sum(0)).ravel().astype(np.float64)
    share = (totals + 0.5) / (totals.sum() + 0.5 * totals.size)
    return torch.as_tensor(np.log(share), dtype=torch.float32)
