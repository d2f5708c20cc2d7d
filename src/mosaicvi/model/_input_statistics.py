"""Statistics of the encoders' input transforms (IDF, LSI), fitted on the training cells.

The decoders' statistics (library reference, initial bias) belong to each likelihood
(:mod:`mosaicvi.nn._likelihoods`).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import scvi
import torch
from scvi import REGISTRY_KEYS
from sklearn.utils.extmath import randomized_svd

from mosaicvi._constants import FEATURE_NAMES_REGISTRY_KEY, modality_registry_key
from mosaicvi.data._feature_masks import batch_feature_table
from mosaicvi.nn._column_statistics import (
    column_nonzeros,
    measured_counts,
    measuring_cells,
    rows_mask,
)
from mosaicvi.nn._input_transforms import INPUT_TRANSFORMS
from mosaicvi.nn._likelihoods import get_likelihood

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from scvi.data import AnnDataManager

logger = logging.getLogger(__name__)

#: Cells used to fit the LSI loadings at most (a random subset beyond that).
MAX_LSI_FIT_CELLS = 50_000


def inverse_document_frequency(
    measured: sp.csr_matrix, rows: np.ndarray | None = None, n_measuring: np.ndarray | None = None
) -> np.ndarray:
    """``n_cells / (1 + number of cells in which the feature is non-zero)`` per feature.

    ``n_measuring`` (feature masks): per feature, the cells of ``rows`` that measured it.
    """
    n_cells = measured.shape[0] if rows is None else int(np.count_nonzero(rows))
    if n_measuring is not None:
        n_cells = n_measuring
    return n_cells / (1.0 + column_nonzeros(measured, rows))


def batch_feature_masks(adata_manager: AnnDataManager) -> dict[str, np.ndarray]:
    """Modality -> ``(n_batch, n_features)`` booleans of the modalities with feature masks.

    Read from the ``feature_masks`` setup argument (:meth:`~mosaicvi.MosaicVI.setup_mudata`), in
    the registry's batch order; modalities without a mask are left out.
    """
    masks = adata_manager.registry["setup_args"].get("feature_masks") or {}
    categories = adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping
    names = adata_manager.registry[FEATURE_NAMES_REGISTRY_KEY]
    return {
        m: batch_feature_table(mask, [str(c) for c in categories], len(names[m]))
        for m, mask in masks.items()
    }


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
    candidates = np.flatnonzero(rows_mask(measured, rows))
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
    n_measuring: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    """Fitted parameters of the input transform called ``transform`` (empty when it has none).

    Fitted on the ``rows`` (boolean mask) of ``measured``, all rows when ``None``;
    ``n_measuring``: see :func:`inverse_document_frequency`. For ``"lsi"``,
    ``n_lsi_components`` is lowered (with a log message) when the modality has too few measured
    cells or features for it.
    """
    needed = INPUT_TRANSFORMS[transform][1]
    if "idf" not in needed:
        return {}
    idf = inverse_document_frequency(measured, rows, n_measuring)
    params = {"idf": torch.as_tensor(idf, dtype=torch.float32)}
    if "loadings" in needed:
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


def fitted_statistics(
    adata_manager: AnnDataManager,
    likelihoods: Mapping[str, str],
    input_transforms: Mapping[str, str],
    presence: np.ndarray,
    n_lsi_components: int,
) -> dict[str, dict]:
    """Every statistic the module is built with, fitted on the cells that measured each modality.

    Returns :class:`~mosaicvi.module.MosaicVAE` keyword arguments: ``n_features``,
    ``library_reference`` and ``decoder_bias`` (from each modality's likelihood),
    ``transform_params`` (its input transform's, :func:`input_transform_params`; seeded by
    ``scvi.settings.seed``) and ``feature_masks`` (:func:`batch_feature_masks`; statistics of a
    masked modality use only the entries each cell's batch measured). ``presence`` is the
    boolean cells x modalities mask, in ``likelihoods``' order. Within
    :func:`statistics_from_weights`, all but the masks are read from the weights to load instead
    (:func:`loaded_statistics`).
    """
    counts_of = {m: adata_manager.get_from_registry(modality_registry_key(m)) for m in likelihoods}
    stored = loaded_statistics(
        likelihoods, input_transforms, {m: x.shape[1] for m, x in counts_of.items()}
    )
    if stored is not None:
        return {**stored, "feature_masks": batch_feature_masks(adata_manager)}
    statistics = {k: {} for k in ("n_features", "library_reference", "decoder_bias")}
    statistics["transform_params"] = {}
    statistics["feature_masks"] = batch_feature_masks(adata_manager)
    for i, m in enumerate(likelihoods):
        counts = counts_of[m]
        measured = presence[:, i]  # a mask: indexing the counts would copy them
        n_measuring = None
        if m in statistics["feature_masks"]:
            table = statistics["feature_masks"][m]
            codes = np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
            counts = measured_counts(counts, codes, table)
            n_measuring = measuring_cells(codes, measured, table)
        likelihood = get_likelihood(likelihoods[m])
        statistics["n_features"][m] = counts.shape[1]
        statistics["library_reference"][m] = likelihood.library_reference(counts, measured)
        statistics["decoder_bias"][m] = likelihood.initial_bias(counts, measured, n_measuring)
        statistics["transform_params"][m] = input_transform_params(
            input_transforms[m],
            counts,
            n_lsi_components,
            seed=scvi.settings.seed or 0,
            rows=measured,
            n_measuring=n_measuring,
        )
    return statistics


#: Weights (a module ``state_dict``) a model being built will load: its statistics are read from
#: them instead of being fitted on its data (:func:`statistics_from_weights`).
_WEIGHTS_TO_LOAD: ContextVar[Mapping[str, torch.Tensor] | None] = ContextVar(
    "mosaicvi_weights_to_load", default=None
)


@contextmanager
def statistics_from_weights(state: Mapping[str, torch.Tensor]) -> Iterator[None]:
    """Within the block, models are built with the statistics stored in ``state``.

    Used when the weights are loaded right after (``MosaicVI.load``, ``load_query_data``): the
    statistics of the training cells are reused, never refitted on other data (a query of
    RNA-only cells has no ATAC cells to fit an LSI on).
    """
    token = _WEIGHTS_TO_LOAD.set(state)
    try:
        yield
    finally:
        _WEIGHTS_TO_LOAD.reset(token)


def loaded_statistics(
    likelihoods: Mapping[str, str],
    input_transforms: Mapping[str, str],
    n_features: Mapping[str, int],
) -> dict[str, dict] | None:
    """:func:`fitted_statistics`' output, read from the weights to load (else ``None``)."""
    state = _WEIGHTS_TO_LOAD.get()
    if state is None:
        return None
    statistics = {k: {} for k in ("n_features", "library_reference", "decoder_bias")}
    statistics["transform_params"] = {}
    for m in likelihoods:
        decoder = f"decoders.{m}."
        statistics["n_features"][m] = int(n_features[m])
        reference = float(torch.exp(state[f"{decoder}log_library_reference"]))
        statistics["library_reference"][m] = reference
        statistics["decoder_bias"][m] = state[f"{decoder}batch_bias"][0].clone()
        prefix = f"encoders.{m}.transform."
        params = {}
        for name in INPUT_TRANSFORMS[input_transforms[m]][1]:
            keys = [k for k in state if k.startswith(prefix) and k.rsplit(".", 1)[-1] == name]
            if len(keys) != 1:
                raise ValueError(f"The weights lack the input statistic {prefix}{name}.")
            params[name] = state[keys[0]].clone()
        statistics["transform_params"][m] = params
    return statistics
