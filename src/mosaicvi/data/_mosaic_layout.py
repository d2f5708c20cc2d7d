"""Validate a (possibly unpaired) multimodal data set and align every modality to one cell order.

``setup_mudata`` and ``setup_anndata`` both end here: whatever the input looked like, the model
sees one cell axis (``mdata.obs`` order), one sparse count matrix per modality on that axis (zero
rows where a cell did not measure the modality) and an explicit presence mask. Everything is
computed and checked first; the data object is written to only at the very end
(:meth:`MosaicLayout.write_to`), so a failed setup leaves it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from mosaicvi._compat import layer_names
from mosaicvi._constants import (
    DEFAULT_LIKELIHOOD,
    KIND_ALIASES,
    MODALITY_SET_OBS_KEY,
    OBSM_PREFIX,
    PRESENCE_OBSM_KEY,
    modality_obsm_key,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from anndata import AnnData

KNOWN_KINDS = tuple(DEFAULT_LIKELIHOOD)


@dataclass
class MosaicLayout:
    """Everything setup derives from the data, before anything is written back.

    Attributes
    ----------
    kinds
        Modality name -> kind (``"rna"``, ``"atac"``, ``"adt"`` or ``"counts"``), in model order.
    counts
        Modality name -> CSR float32 counts of shape ``(n_obs, n_features)`` in global cell order.
    presence
        Boolean DataFrame (cells x modalities): which cell measured which modality.
    obs_columns
        Columns to add to the global ``obs`` (pulled from the modalities).
    feature_names
        Modality name -> names of its features, in column order of ``counts``.
    """

    kinds: dict[str, str]
    counts: dict[str, sp.csr_matrix]
    presence: pd.DataFrame
    obs_columns: dict[str, pd.Series] = field(default_factory=dict)
    feature_names: dict[str, list[str]] = field(default_factory=dict)

    def write_to(self, data: AnnData | MuData) -> Callable[[], None]:
        """Store the aligned counts, the presence mask, pulled columns and the modality sets.

        Entries of an earlier setup that this layout does not have are removed. Returns a function
        that puts ``data`` back as it was.
        """
        new_obsm = {modality_obsm_key(m): matrix for m, matrix in self.counts.items()}
        new_obsm[PRESENCE_OBSM_KEY] = self.presence
        stale = [k for k in data.obsm if k.startswith(OBSM_PREFIX) and k not in new_obsm]
        saved_obsm = {k: data.obsm[k] for k in [*new_obsm, *stale] if k in data.obsm}
        added_obs = [name for name in self.obs_columns if name not in data.obs.columns]
        saved_sets = data.obs.get(MODALITY_SET_OBS_KEY)

        def undo() -> None:
            for key in [*new_obsm, *stale]:
                if key in data.obsm:
                    del data.obsm[key]
            for key, value in saved_obsm.items():
                data.obsm[key] = value
            for name in added_obs:
                if name in data.obs.columns:
                    del data.obs[name]
            if saved_sets is None:
                if MODALITY_SET_OBS_KEY in data.obs.columns:
                    del data.obs[MODALITY_SET_OBS_KEY]
            else:
                data.obs[MODALITY_SET_OBS_KEY] = saved_sets

        for key in stale:
            del data.obsm[key]
        for name, column in self.obs_columns.items():
            data.obs[name] = pd.Categorical(column)
        data.obs[MODALITY_SET_OBS_KEY] = modality_sets(self.presence)
        for key, value in new_obsm.items():
            data.obsm[key] = value
        return undo


def modality_sets(presence: pd.DataFrame) -> pd.Categorical:
    """The modalities each cell measured, joined by ``"+"`` in column order (``"rna+atac"``).

    Categories are ordered from the most modalities to the fewest, then by first appearance.
    """
    names = [str(name) for name in presence.columns]
    mask = presence.to_numpy(dtype=bool)
    patterns, inverse = np.unique(
        mask.astype(np.int64) @ (1 << np.arange(len(names), dtype=np.int64)), return_inverse=True
    )
    labels = ["+".join(n for i, n in enumerate(names) if p >> i & 1) for p in patterns]
    sizes = [-int(p).bit_count() for p in patterns]
    order = sorted(range(len(labels)), key=lambda k: (sizes[k], np.argmax(inverse == k)))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return pd.Categorical.from_codes(rank[inverse.ravel()], [labels[k] for k in order])


def infer_kind(name: str) -> str:
    """Kind of a modality from its common name (``rna``/``gex``, ``atac``/``peaks``, ``adt``/``prot``).

    Raises
    ------
    ValueError
        If the name is not a common one.
    """
    kind = KIND_ALIASES.get(name.strip().lower())
    if kind is None:
        raise ValueError(
            f"Cannot tell which kind of modality {name!r} is. Pass it explicitly, e.g. "
            f"`modalities={{{name!r}: 'rna'}}`; kinds are {', '.join(map(repr, KNOWN_KINDS))} "
            "('counts' for any other count modality)."
        )
    return kind


def resolve_kinds(
    available: Sequence[str], modalities: Mapping[str, str] | Sequence[str] | None
) -> dict[str, str]:
    """Map each modality to use to its kind, checking names against ``available``."""
    if modalities is None:
        return {name: infer_kind(name) for name in available}
    if isinstance(modalities, str):
        raise TypeError(
            "`modalities` must be a dict {modality name: kind} or a list of modality names, "
            f"not the string {modalities!r}."
        )
    if not isinstance(modalities, dict):
        modalities = {name: infer_kind(name) for name in modalities}
    if len(modalities) == 0:
        raise ValueError("`modalities` is empty: name at least one modality to model.")
    unknown = [name for name in modalities if name not in available]
    if unknown:
        raise ValueError(
            f"`modalities` names {unknown}, which the data does not have. "
            f"Available modalities: {list(available)}."
        )
    kinds = {}
    for name, kind in modalities.items():
        if "." in name or not name:
            raise ValueError(
                f"Modality name {name!r} cannot be used: names must be non-empty and have no '.'. "
                "Rename it in `mdata.mod` (e.g. `mdata.mod = {...}` with a new key)."
            )
        if kind not in KNOWN_KINDS:
            raise ValueError(
                f"`modalities[{name!r}]` is {kind!r}; it must be one of {KNOWN_KINDS} "
                "('counts' for any other count modality)."
            )
        kinds[name] = kind
    return kinds


def resolve_layers(
    kinds: Mapping[str, str], layers: Mapping[str, str | None] | str | None
) -> dict[str, str | None]:
    """Layer to read for each modality (``None`` means ``X``)."""
    if layers is None or isinstance(layers, str):
        return dict.fromkeys(kinds, layers)
    unknown = [name for name in layers if name not in kinds]
    if unknown:
        raise ValueError(
            f"`layers` names modalities {unknown} that are not modelled; modelled: {list(kinds)}."
        )
    return {name: layers.get(name) for name in kinds}


def read_counts(adata: AnnData, layer: str | None, where: str) -> sp.csr_matrix:
    """Return the counts of ``adata`` (``X`` or a layer) as CSR float32, after checking them.

    ``where`` names the modality in error messages.
    """
    if adata.isbacked:
        raise ValueError(
            f"{where} is backed on disk; load it into memory first (`mdata = mudata.read_h5mu(path)` "
            "without `backed`, or `adata = adata.to_memory()`)."
        )
    if layer is None:
        matrix, source = adata.X, "X"
    else:
        if layer not in adata.layers:
            raise ValueError(
                f"{where} has no layer {layer!r}; its layers are {layer_names(adata)}. "
                "Pass `layers=None` to use X."
            )
        matrix, source = adata.layers[layer], f"layers[{layer!r}]"
    if matrix is None:
        raise ValueError(f"{where}.{source} is empty (None); pass the layer holding raw counts.")
    if adata.n_vars == 0:
        raise ValueError(f"{where} has no features; drop it from `modalities`.")
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    values = matrix.data
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{where}.{source} contains NaN or infinite values; the model needs finite raw "
            "counts. Pass the raw-count layer with `layers=`, or drop the affected cells."
        )
    if values.size and values.min() < 0:
        raise ValueError(
            f"{where}.{source} contains negative values; the model needs raw counts. "
            "Pass the raw-count layer with `layers=`."
        )
    if values.size and not np.array_equal(values, np.round(values)):
        raise ValueError(
            f"{where}.{source} holds non-integer values (normalised data?); the count likelihoods "
            "need raw counts. Pass the raw-count layer, e.g. `layers={'rna': 'counts'}`."
        )
    if values.size and not values.all():
        # ``csr_matrix(matrix)`` shares the arrays of a float32 CSR input: prune a copy, never
        # the user's matrix (eliminate_zeros rewrites its arrays in place).
        matrix = matrix.copy()
        matrix.eliminate_zeros()
    return matrix


def align_rows(matrix: sp.csr_matrix, rows: np.ndarray, n_obs: int) -> sp.csr_matrix:
    """Place row ``i`` of ``matrix`` at row ``rows[i]`` of an ``n_obs``-row matrix (zeros elsewhere).

    When ``rows`` is increasing (the modality's cells come in the global order, as in a MuData
    built by ``mudata.MuData({...})`` from sorted modalities), only the row pointers are new: the
    result shares its values and column indices with ``matrix``, so setup does not copy the
    counts (half the peak memory at a million cells).
    """
    if len(rows) == n_obs and np.array_equal(rows, np.arange(n_obs)):
        return matrix
    if matrix.has_sorted_indices and np.all(np.diff(rows) > 0):
        per_row = np.zeros(n_obs, dtype=matrix.indptr.dtype)
        per_row[rows] = np.diff(matrix.indptr)
        indptr = np.concatenate([np.zeros(1, per_row.dtype), np.cumsum(per_row)])
        return sp.csr_matrix(
            (matrix.data, matrix.indices, indptr), shape=(n_obs, matrix.shape[1]), copy=False
        )
    selector = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, np.arange(len(rows)))),
        shape=(n_obs, len(rows)),
    )
    aligned = selector @ matrix
    aligned.sort_indices()
    return aligned.astype(np.float32)


def modality_rows(global_names: pd.Index, modality_names: pd.Index, where: str) -> np.ndarray:
    """Positions of a modality's cells in the global cell order, checking they all exist."""
    if not modality_names.is_unique:
        duplicated = modality_names[modality_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"{where}.obs_names has duplicates (e.g. {duplicated}); make them unique "
            "(`adata.obs_names_make_unique()`)."
        )
    rows = global_names.get_indexer(modality_names)
    if np.any(rows < 0):
        missing = modality_names[rows < 0][:5].tolist()
        raise ValueError(
            f"{where} has cells that are not in mdata.obs_names (e.g. {missing}). "
            "Call `mdata.update()` after changing a modality."
        )
    return rows


def categorical_column(
    obs: pd.DataFrame,
    key: str,
    argument: str,
    sources: Mapping[str, AnnData] | None = None,
) -> pd.Series | None:
    """Fetch ``obs[key]``; when absent, pull it from the modalities' ``obs``.

    Returns the pulled column (to be written to ``obs``) or ``None`` when ``obs`` already had it.
    """
    if key in obs.columns:
        column, pulled = obs[key], None
    else:
        column = pd.Series(pd.NA, index=obs.index, dtype=object)
        found = []
        for modality, adata in (sources or {}).items():
            if key not in adata.obs.columns:
                continue
            found.append(modality)
            values = adata.obs[key].astype(object).reindex(obs.index)
            clash = column.notna() & values.notna() & (column != values)
            if clash.any():
                cell = clash.index[clash][0]
                raise ValueError(
                    f"`{argument}={key!r}`: modalities disagree on cell {cell!r} "
                    f"({column[cell]!r} vs {values[cell]!r} in {modality!r}). "
                    f"Put one agreed column in mdata.obs[{key!r}]."
                )
            column = column.where(column.notna(), values)
        if not found:
            raise ValueError(
                f"`{argument}={key!r}` is not a column of obs"
                + (" nor of any modality's obs" if sources else "")
                + f". Available columns: {list(obs.columns)}."
            )
        pulled = column
    missing = column.isna()
    if missing.any():
        raise ValueError(
            f"`{argument}={key!r}` has no value for {int(missing.sum())} cells "
            f"(e.g. {column.index[missing][:3].tolist()}). Fill them, or drop those cells."
        )
    return pulled


def build_mosaic_layout(
    mdata: MuData,
    modalities: Mapping[str, str] | Sequence[str] | None,
    layers: Mapping[str, str | None] | str | None,
    obs_keys: Mapping[str, str | None],
) -> MosaicLayout:
    """Check a MuData and derive its :class:`MosaicLayout` without modifying it.

    Parameters
    ----------
    mdata
        Paired or unpaired MuData; each modality's cells must be a subset of ``mdata.obs_names``.
    modalities
        Modality name -> kind, a list of names (kinds inferred), or ``None`` for all modalities.
    layers
        Modality name -> layer (``None`` for ``X``), or one layer name for all modalities.
    obs_keys
        Setup argument name -> obs column (``batch_key``, ``labels_key``, ...); ``None`` skipped.
    """
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"setup_mudata needs a MuData, got an {type(mdata).__name__}. For a single AnnData "
            "use `MosaicVI.setup_anndata(adata, ...)`, or wrap it: `mudata.MuData({'rna': adata})`."
        )
    if not mdata.obs_names.is_unique:
        duplicated = mdata.obs_names[mdata.obs_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"mdata.obs_names has duplicates (e.g. {duplicated}); make them unique first: "
            "`adata.obs_names_make_unique()` on each modality, then `mdata.update()`."
        )
    kinds = resolve_kinds(list(mdata.mod), modalities)
    layer_of = resolve_layers(kinds, layers)
    n_obs = mdata.n_obs
    counts, presence = {}, {}
    for name in kinds:
        adata = mdata.mod[name]
        where = f"mdata.mod[{name!r}]"
        if adata.n_obs == 0:
            raise ValueError(f"{where} has no cells; drop it from `modalities`.")
        rows = modality_rows(mdata.obs_names, adata.obs_names, where)
        counts[name] = align_rows(read_counts(adata, layer_of[name], where), rows, n_obs)
        mask = np.zeros(n_obs, dtype=bool)
        mask[rows] = True
        presence[name] = mask
    presence_df = pd.DataFrame(presence, index=mdata.obs_names)
    orphans = ~presence_df.to_numpy().any(axis=1)
    if orphans.any():
        raise ValueError(
            f"{int(orphans.sum())} cells of mdata.obs are in none of the modelled modalities "
            f"(e.g. {mdata.obs_names[orphans][:3].tolist()}). Subset them away, e.g. "
            "`mdata = mdata[mdata.obs_names.isin(<cells with data>)].copy()`."
        )
    feature_names = pd.Index(np.concatenate([mdata.mod[m].var_names.to_numpy() for m in kinds]))
    if not feature_names.is_unique:
        duplicated = feature_names[feature_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"Feature names repeat within or across modalities (e.g. {duplicated}). Make them "
            "unique, e.g. suffix protein names: `mdata['adt'].var_names += '_prot'`."
        )
    obs_columns = {}
    for argument, key in obs_keys.items():
        if key is None:
            continue
        pulled = categorical_column(mdata.obs, key, argument, {m: mdata.mod[m] for m in kinds})
        if pulled is not None:
            obs_columns[key] = pulled
    names = {m: mdata.mod[m].var_names.astype(str).tolist() for m in kinds}
    return MosaicLayout(kinds, counts, presence_df, obs_columns, names)
