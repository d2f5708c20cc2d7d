"""Regulatory links read off a trained model: the guidance graph's cross-modality edges, scored."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from mosaicvi.data._intervals import normalise_chrom, parse_regions, regions_from_columns
from mosaicvi.model._checks import check_modality
from mosaicvi.model._outputs import feature_embeddings, modality_var

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mosaicvi import MosaicVI

#: Columns of :meth:`mosaicvi.MosaicVI.get_feature_links`, in order.
LINK_COLUMNS = [
    "source",
    "target",
    "source_modality",
    "target_modality",
    "similarity",
    "distance",
    "weight",
    "sign",
]


def feature_regions(var: pd.DataFrame, where: str) -> pd.DataFrame:
    """``chrom`` (normalised), ``start``, ``end`` of each row of ``var``; NaN where unknown.

    From ``var`` chrom/start/end columns, else an ``interval`` column (``chr1:100-200``), else the
    names themselves (peaks named ``chr1_100_200``).
    """
    regions = regions_from_columns(var, where)
    if regions is None:
        source = var["interval"] if "interval" in var.columns else var.index
        regions = parse_regions(source)
    known = (
        regions["chrom"].notna() & regions["start"].notna() & regions["end"].notna()
    ).to_numpy()
    chrom = np.full(len(regions), None, dtype=object)
    chrom[known] = normalise_chrom(regions["chrom"].to_numpy()[known])
    start = np.where(known, regions["start"].to_numpy(dtype=float), np.nan)
    end = np.where(known, regions["end"].to_numpy(dtype=float), np.nan)
    return pd.DataFrame({"chrom": chrom, "start": start, "end": end}, index=var.index)


def genomic_distance(first: pd.DataFrame, second: pd.DataFrame) -> np.ndarray:
    """Gap in bp between paired regions (0 when they overlap); NaN across chromosomes or unknown."""
    same = (first["chrom"].to_numpy() == second["chrom"].to_numpy()) & pd.notna(
        first["chrom"].to_numpy()
    )
    gap = np.maximum(
        np.maximum(first["start"].to_numpy(), second["start"].to_numpy())
        - np.minimum(first["end"].to_numpy(), second["end"].to_numpy()),
        0.0,
    )
    return np.where(same, gap, np.nan)


def feature_links(
    model: MosaicVI,
    features: str | Sequence[str] | None,
    modalities: Sequence[str] | None,
    min_similarity: float | None,
) -> pd.DataFrame:
    """:meth:`mosaicvi.MosaicVI.get_feature_links` (whose docstring describes every argument)."""
    model._check_if_trained(warn=False)
    means, _ = feature_embeddings(model.module, model.feature_names)
    encoder = model.module.graph_encoder
    source = encoder.edge_source.cpu().numpy()
    target = encoder.edge_target.cpu().numpy()
    names = pd.Index(np.concatenate([frame.index.to_numpy() for frame in means.values()]))
    modality = np.concatenate([np.full(len(frame), m, dtype=object) for m, frame in means.items()])
    keep = (source < target) & (modality[source] != modality[target])
    if modalities is not None:
        chosen = [check_modality(m, model.modalities) for m in modalities]
        keep &= np.isin(modality[source], chosen) & np.isin(modality[target], chosen)
    if features is not None:
        features = [features] if isinstance(features, str) else list(features)
        unknown = [f for f in features if f not in names]
        if unknown:
            raise ValueError(
                f"`features` {unknown[:5]} are not features of the model; e.g. {names[:3].tolist()}."
            )
        keep &= names[source].isin(features) | names[target].isin(features)
    source, target = source[keep], target[keep]
    vectors = np.concatenate([frame.to_numpy() for frame in means.values()])
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    regions = pd.concat(
        [
            feature_regions(modality_var(model.adata, m, frame.index), f"var of {m!r}")
            for m, frame in means.items()
        ]
    )
    table = pd.DataFrame(
        {
            "source": names[source],
            "target": names[target],
            "source_modality": modality[source],
            "target_modality": modality[target],
            "similarity": np.einsum("ij,ij->i", unit[source], unit[target]),
            "distance": genomic_distance(regions.iloc[source], regions.iloc[target]),
            "weight": encoder.edge_weight.cpu().numpy()[keep],
            "sign": encoder.edge_sign.cpu().numpy()[keep].astype(np.int8),
        },
        columns=LINK_COLUMNS,
    )
    if min_similarity is not None:
        table = table[table["similarity"] >= min_similarity]
    return table.sort_values("similarity", ascending=False, kind="stable").reset_index(drop=True)
