"""Layout of a single AnnData: one modality, or several concatenated along ``var`` (10x style)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from mosaicvi.data._mosaic_layout import (
    KNOWN_KINDS,
    MosaicLayout,
    categorical_column,
    read_counts,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

#: Cell Ranger ``feature_types`` values and the modality (name and kind) each becomes.
TENX_FEATURE_TYPES = {
    "Gene Expression": "rna",
    "Peaks": "atac",
    "Antibody Capture": "adt",
}


def modality_name(feature_type: str) -> str:
    """Modality name for a ``feature_types`` value: 10x names map to rna/atac/adt, others slugged."""
    if feature_type in TENX_FEATURE_TYPES:
        return TENX_FEATURE_TYPES[feature_type]
    slug = re.sub(r"[^0-9a-z]+", "_", str(feature_type).strip().lower()).strip("_")
    return slug or "counts"


def build_anndata_layout(
    adata: AnnData,
    layer: str | None,
    feature_type_key: str | None,
    modality: str,
    obs_keys: Mapping[str, str | None],
) -> MosaicLayout:
    """Check an AnnData and derive its :class:`MosaicLayout` without modifying it.

    With ``feature_type_key`` in ``adata.var``, each feature type becomes one modality (every cell
    is taken to have measured every feature type, as in a Cell Ranger multiome or CITE-seq
    matrix). Otherwise the whole matrix is one modality of kind ``modality``.
    """
    if isinstance(adata, MuData) or not isinstance(adata, AnnData):
        raise TypeError(
            f"setup_anndata needs an AnnData, got a {type(adata).__name__}. For a MuData use "
            "`MosaicVI.setup_mudata(mdata, ...)`."
        )
    if not adata.obs_names.is_unique:
        duplicated = adata.obs_names[adata.obs_names.duplicated()].unique()[:5].tolist()
        raise ValueError(f"adata.obs_names has duplicates (e.g. {duplicated}); make them unique.")
    if not adata.var_names.is_unique:
        duplicated = adata.var_names[adata.var_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"adata.var_names has duplicates (e.g. {duplicated}); `adata.var_names_make_unique()`."
        )
    if adata.n_obs == 0:
        raise ValueError("adata has no cells.")
    counts = read_counts(adata, layer, "adata")
    if feature_type_key is not None and feature_type_key in adata.var.columns:
        types = adata.var[feature_type_key].astype(str).to_numpy()
        kinds, columns = {}, {}
        for feature_type in pd.unique(types):
            name = modality_name(feature_type)
            if name in kinds:
                raise ValueError(
                    f"adata.var[{feature_type_key!r}] values map to the same modality {name!r}; "
                    "rename the feature types."
                )
            kinds[name] = name if name in KNOWN_KINDS else "counts"
            columns[name] = np.flatnonzero(types == feature_type)
        per_modality = {name: counts[:, idx].tocsr() for name, idx in columns.items()}
        names = {name: adata.var_names[idx].astype(str).tolist() for name, idx in columns.items()}
    else:
        if modality not in KNOWN_KINDS:
            raise ValueError(f"`modality` is {modality!r}; it must be one of {KNOWN_KINDS}.")
        kinds, per_modality = {modality: modality}, {modality: counts}
        names = {modality: adata.var_names.astype(str).tolist()}
    presence = pd.DataFrame(
        {name: np.ones(adata.n_obs, dtype=bool) for name in kinds}, index=adata.obs_names
    )
    obs_columns = {}
    for argument, key in obs_keys.items():
        if key is not None:
            categorical_column(adata.obs, key, argument)
    return MosaicLayout(kinds, per_modality, presence, obs_columns, names)


def data_feature_names(adata: AnnData | MuData, setup_args: Mapping) -> dict[str, pd.Index]:
    """Feature names of each modality of ``adata`` as ``setup_args`` would split it."""
    if isinstance(adata, MuData):
        return {m: adata.mod[m].var_names for m in setup_args["modalities"] if m in adata.mod}
    key = setup_args.get("feature_type_key")
    if key is not None and key in adata.var.columns:
        types = adata.var[key].astype(str).map(modality_name)
        return {name: adata.var_names[(types == name).to_numpy()] for name in pd.unique(types)}
    return {setup_args.get("modality", "rna"): adata.var_names}
