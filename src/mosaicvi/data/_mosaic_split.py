"""Turn a paired MuData into a mosaic one by hiding modalities in some batches."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mudata

from mosaicvi._compat import mudata_no_pull_on_update

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence


def mosaic_split(
    mdata: mudata.MuData,
    keep: Mapping[str, Sequence[str]],
    batch_key: str = "batch",
) -> mudata.MuData:
    """Build an unpaired MuData that keeps each modality only in the listed batches.

    Parameters
    ----------
    mdata
        Paired MuData (every modality holds the cells it measured).
    keep
        Modality name -> batches in which that modality stays measured. Modalities not named are
        kept in every batch. Cells left with no modality are dropped.
    batch_key
        Column of ``mdata.obs`` with the batch of each cell.

    Returns
    -------
    A new MuData built from per-modality AnnData subsets, exactly as ``mudata.MuData({...})``
    builds unpaired data, so its cells come in mudata's order (the union of the modalities' cells
    in the order the modalities are listed); ``mdata`` is not modified. ``obs`` keeps the global
    columns of ``mdata`` (prefixed per-modality copies such as ``rna:batch`` are not repeated).

    Examples
    --------
    >>> import mosaicvi
    >>> paired = mosaicvi.data.snareseq()
    >>> mosaic = mosaicvi.data.mosaic_split(
    ...     paired, {"rna": ["09A", "09B", "09C"], "atac": ["09A", "09D"]}
    ... )
    >>> mosaic.n_obs, mosaic["rna"].n_obs, mosaic["atac"].n_obs
    (3537, 2621, 1729)
    """
    if batch_key not in mdata.obs.columns:
        raise ValueError(
            f"`batch_key={batch_key!r}` is not a column of mdata.obs; columns: {list(mdata.obs.columns)}."
        )
    unknown = [m for m in keep if m not in mdata.mod]
    if unknown:
        raise ValueError(
            f"`keep` names modalities {unknown} not in mdata.mod ({list(mdata.mod)})."
        )
    batches = mdata.obs[batch_key].astype(str)
    known = set(batches.unique())
    mods = {}
    for name, adata in mdata.mod.items():
        if name not in keep:
            mods[name] = adata.copy()
            continue
        missing = sorted(set(map(str, keep[name])) - known)
        if missing:
            raise ValueError(
                f"`keep[{name!r}]` names batches {missing} not in obs[{batch_key!r}]."
            )
        cells = batches.index[batches.isin(list(map(str, keep[name])))]
        subset = adata[adata.obs_names.isin(cells)].copy()
        if subset.n_obs:
            mods[name] = subset
    with mudata_no_pull_on_update():
        mosaic = mudata.MuData(mods)
    obs = mdata.obs.loc[mosaic.obs_names]
    for column in obs.columns:
        if ":" not in column:
            mosaic.obs[column] = obs[column].values
    return mosaic
