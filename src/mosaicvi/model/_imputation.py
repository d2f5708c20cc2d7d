"""Imputation as an AnnData: one modality decoded for every cell, ready for scanpy."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from mosaicvi._constants import OBSM_PREFIX, PRESENCE_KEY
from mosaicvi.model._inference import cells_loader
from mosaicvi.model._normalized_expression import decoding, iter_normalized_expression
from mosaicvi.model._outputs import modality_var

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mosaicvi import MosaicVI

#: ``obs`` column of :meth:`~mosaicvi.MosaicVI.get_imputed`'s result: True where the cell
#: measured the modality (its values are denoised), False where they are imputed.
MEASURED_OBS_KEY = "measured"
#: Default ``threshold`` of binary modalities, relative to the average value of a typical cell
#: (library / number of features): values below this multiple of it are dropped.
BINARY_THRESHOLD_FACTOR = 5.0


def imputed_anndata(
    model: MosaicVI,
    modality: str,
    adata: MuData | AnnData | None,
    feature_list: Sequence[str] | None,
    threshold: float | None,
    dense: bool | None,
    transform_batch: str | Sequence[str] | None,
    library_size: float | str | None,
    use_z_mean: bool,
    batch_size: int | None,
    gene_list: Sequence[str] | None = None,
) -> AnnData:
    """:meth:`mosaicvi.MosaicVI.get_imputed` (whose docstring describes every argument)."""
    model._check_if_trained(warn=False)
    adata = model._validate_anndata(adata)
    plan = decoding(model, modality, transform_batch, library_size, feature_list, gene_list)
    binary = model.module.likelihoods[plan.modality].binary
    dense = not binary if dense is None else bool(dense)
    if threshold is None:
        n_features = len(model.feature_names[plan.modality])
        threshold = BINARY_THRESHOLD_FACTOR * plan.library / n_features if binary else 0.0
    if not dense and not (np.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"`threshold` must be a number >= 0, got {threshold!r}.")
    _, loader = cells_loader(model, adata, None, batch_size, None, validated=True)
    chunks = []
    for values in iter_normalized_expression(model.module, loader, plan, 1, use_z_mean):
        values = values[0]
        if not dense:
            values[values < threshold] = 0.0
            values = sp.csr_matrix(values)
        chunks.append(values)
    x = np.concatenate(chunks) if dense else stack_rows(chunks)
    names = model.feature_names[plan.modality][plan.columns]
    manager = model.get_anndata_manager(adata, required=True)
    column = list(model.modalities).index(plan.modality)
    obs = adata.obs.copy()
    obs[MEASURED_OBS_KEY] = np.asarray(manager.get_from_registry(PRESENCE_KEY), bool)[:, column]
    obsm = {k: v.copy() for k, v in adata.obsm.items() if not str(k).startswith(OBSM_PREFIX)}
    uns = {k: np.copy(v) for k, v in adata.uns.items() if str(k).endswith("_colors")}
    imputed = AnnData(x, obs=obs, var=modality_var(adata, plan.modality, names), obsm=obsm)
    imputed.uns.update(uns)
    imputed.uns["mosaicvi_imputed"] = {
        "modality": plan.modality,
        "library_size": plan.library,
        "threshold": None if dense else float(threshold),
    }
    return imputed


def stack_rows(chunks: list[sp.csr_matrix]) -> sp.csr_matrix:
    """CSR rows of ``chunks`` one after another, building each array once (int32 indices)."""
    n_cols = chunks[0].shape[1]
    counts = np.concatenate([[0]] + [np.diff(c.indptr) for c in chunks])
    indptr = np.cumsum(counts, dtype=np.int64)
    index_dtype = np.int32 if indptr[-1] < np.iinfo(np.int32).max else np.int64
    data = np.concatenate([c.data for c in chunks])
    indices = np.concatenate([c.indices.astype(index_dtype, copy=False) for c in chunks])
    shape = (len(indptr) - 1, n_cols)
    return sp.csr_matrix((data, indices, indptr.astype(index_dtype)), shape=shape)
