"""Feature-level presence: which batch measured which feature of a modality.

Batches that measured different panels of one modality (gene panels, antibody panels, peak sets
called per sample) can share one modality holding the union of their features. A *feature mask*
(batches x features, ``True`` = measured) says which entries are real measurements: the others
never enter the likelihood, the encoders' input statistics, the decoders' starting biases or raw
DE statistics, and are imputed like a missing modality. Masks are set up from the data
(:func:`concat_panels` records which AnnData held which features), never from all-zero columns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from anndata import AnnData


def concat_panels(
    adatas: Sequence[AnnData] | Mapping[str, AnnData],
    batch_key: str = "batch",
    layer: str | None = None,
) -> tuple[AnnData, pd.DataFrame]:
    """Concatenate AnnData objects that measured different features of one modality.

    The result holds the union of the features (zeros where a part did not measure a feature)
    and the feature mask to pass to :meth:`~mosaicvi.MosaicVI.setup_mudata` as
    ``feature_masks={modality: mask}``: every batch of a part measured exactly that part's
    features. Use it instead of cutting the panels down to the features they share.

    Parameters
    ----------
    adatas
        The parts (a list, or name -> AnnData), each with raw counts and disjoint cells.
    batch_key
        Column of each part's ``obs`` with the batch of each cell; a batch may not be split
        across parts that measured different features.
    layer
        Layer of each part holding the counts (``None``: ``X``); the result has them in ``X``.

    Returns
    -------
    ``(adata, mask)``: the concatenated AnnData (the parts' ``obs`` columns they all share, the
    ``var`` columns they agree on) and a boolean DataFrame, batches x features.

    Examples
    --------
    >>> import mosaicvi
    >>> parts = mosaicvi.data.neurips2021_bmmc_starter()
    >>> for name in ("multiome_rna", "cite_rna"):  # each assay's samples are its own batches
    ...     parts[name].obs["batch"] = name + "_" + parts[name].obs["batch"].astype(str)
    >>> rna, mask = mosaicvi.data.concat_panels(
    ...     [parts["multiome_rna"], parts["cite_rna"]], layer="counts"
    ... )
    >>> rna.n_vars, mask.shape
    (1524, (4, 1524))
    """
    parts = list(adatas.values()) if isinstance(adatas, dict) else list(adatas)
    if not parts:
        raise ValueError("`adatas` is empty; give the AnnData objects to concatenate.")
    pieces, rows = [], {}
    features = pd.Index([])
    for i, adata in enumerate(parts):
        if batch_key not in adata.obs.columns:
            raise ValueError(f"Part {i} has no obs column {batch_key!r} (`batch_key`).")
        piece = ad.AnnData(
            X=adata.X if layer is None else adata.layers[layer],
            obs=adata.obs.copy(),
            var=adata.var.copy(),
        )
        pieces.append(piece)
        features = features.append(adata.var_names.difference(features))
        for batch in pd.unique(adata.obs[batch_key].astype(str)):
            measured = set(adata.var_names)
            if batch in rows and rows[batch] != measured:
                raise ValueError(
                    f"Batch {batch!r} is in several parts with different features; give each "
                    "panel its own batch name."
                )
            rows[batch] = measured
    combined = ad.concat(pieces, join="outer", merge="same", fill_value=0)
    combined = combined[:, features].copy()
    mask = pd.DataFrame(
        {b: combined.var_names.isin(list(measured)) for b, measured in rows.items()},
        index=combined.var_names,
    ).T
    return combined, mask


def checked_feature_masks(
    feature_masks: Mapping[str, pd.DataFrame] | None,
    feature_names: Mapping[str, Sequence[str]],
    batches: pd.Series | None,
    presence: pd.DataFrame,
    known_batches: Sequence[str] | None = None,
) -> dict[str, pd.DataFrame] | None:
    """Validate ``setup_mudata``'s ``feature_masks`` and bring them into canonical form.

    Parameters
    ----------
    feature_masks
        Modality name -> boolean DataFrame (batches x features, ``True`` = measured), or ``None``.
    feature_names
        Modality name -> its features, in model order.
    batches
        Batch of each cell (global cell order), ``None`` when there is no ``batch_key``.
    presence
        Cells x modalities boolean presence.
    known_batches
        Batches a mask may name (``None``: those of ``batches``); a trained model's, when new
        data holding some of its batches is set up like the training data.

    Returns
    -------
    Modality -> boolean DataFrame with string batch names as index (only the batches given) and
    the modality's features in model order as columns; ``None`` when nothing was given.
    Batches a mask does not list measured every feature of that modality.
    """
    if feature_masks is None or len(feature_masks) == 0:
        return None
    if not isinstance(feature_masks, dict):
        raise TypeError(
            "`feature_masks` must be a dict: modality name -> boolean DataFrame (batches x "
            f"features), got {type(feature_masks).__name__}."
        )
    if batches is None:
        raise ValueError("`feature_masks` are per batch; pass `batch_key` too.")
    if known_batches is None:
        known_batches = pd.unique(batches.astype(str))
    known_batches = pd.Index([str(b) for b in known_batches])
    canonical = {}
    for m, mask in feature_masks.items():
        where = f"feature_masks[{m!r}]"
        if m not in feature_names:
            raise ValueError(
                f"{where}: {m!r} is not a modelled modality ({sorted(feature_names)})."
            )
        if not isinstance(mask, pd.DataFrame):
            raise TypeError(
                f"{where} must be a pandas DataFrame, batches x features, of booleans; got "
                f"{type(mask).__name__}."
            )
        mask = mask.copy()
        mask.index = mask.index.astype(str)
        mask.columns = mask.columns.astype(str)
        names = pd.Index([str(f) for f in feature_names[m]])
        unknown_batches = mask.index.difference(known_batches)
        unknown_features = mask.columns.difference(names)
        missing_features = names.difference(mask.columns)
        if not mask.index.is_unique or not mask.columns.is_unique:
            raise ValueError(f"{where} has repeated batch or feature names.")
        if len(mask.index.intersection(names)) and not len(mask.index.intersection(known_batches)):
            raise ValueError(
                f"{where} looks transposed (features x batches); pass it batches x features, "
                f"e.g. `feature_masks={{{m!r}: mask.T}}`."
            )
        if len(unknown_batches):
            raise ValueError(
                f"{where} names batches not in the data: {unknown_batches[:5].tolist()}; the "
                f"batches are {known_batches[:10].tolist()}. Index the rows by batch name."
            )
        if len(unknown_features) or len(missing_features):
            raise ValueError(
                f"{where} must have one column per feature of {m!r} ({len(names)}): "
                f"{len(unknown_features)} unknown (e.g. {unknown_features[:3].tolist()}), "
                f"{len(missing_features)} missing (e.g. {missing_features[:3].tolist()}). "
                "A mask is batches x features (transpose it if needed)."
            )
        if not all(pd.api.types.is_bool_dtype(dtype) for dtype in mask.dtypes):
            raise TypeError(f"{where} must hold booleans (True = measured); use `.astype(bool)`.")
        mask = mask[names].astype(bool)
        measuring = pd.Index(pd.unique(batches[presence[m].to_numpy()].astype(str)))
        empty = [b for b in mask.index[~mask.any(axis=1).to_numpy()] if b in measuring]
        if empty:
            raise ValueError(
                f"{where}: batches {empty[:5]} have {m!r} cells but no measured feature; drop "
                f"those cells from mdata[{m!r}] or fix the mask."
            )
        canonical[m] = mask
    return canonical


def batch_feature_table(
    mask: pd.DataFrame | None, batch_categories: Sequence[str], n_features: int
) -> np.ndarray:
    """``(n_batch, n_features)`` boolean table in the registry's batch order.

    Batches ``mask`` does not list (or no mask at all) measured every feature.
    """
    table = np.ones((len(batch_categories), n_features), dtype=bool)
    if mask is None:
        return table
    position = {str(b): i for i, b in enumerate(batch_categories)}
    for batch, row in mask.iterrows():
        table[position[str(batch)]] = row.to_numpy(dtype=bool)
    return table
