"""Bring a guidance graph into a model's feature order, and pick the hybrid decoders' weight."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData

from mosaicvi.data._guidance_graph import GuidanceGraph

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

#: Cells two modalities must share for the data to count as paired (mmAAVI's rule).
MIN_PAIRED_CELLS = 10


def resolve_guidance_graph(
    graph: GuidanceGraph | str | None,
    adata: AnnData | MuData,
    feature_names: dict[str, pd.Index],
) -> sp.csr_matrix | None:
    """The signed graph over the model's features, in model order.

    Parameters
    ----------
    graph
        A :class:`~mosaicvi.data.GuidanceGraph`, the key under which
        :func:`~mosaicvi.data.guidance_graph` stored one in ``adata`` (a MuData), or ``None``.
    adata
        The data the model is built on.
    feature_names
        Modality -> its feature names, in model order.

    Model modalities the graph does not cover get self-loops only (their embeddings are learned
    from the data alone); graph modalities the model does not use are left out. Within a modality
    covered by the graph, the features must be the same as the model's (any order).
    """
    if graph is None:
        return None
    if isinstance(graph, str):
        if not isinstance(adata, MuData):
            raise ValueError(
                f"`guidance_graph={graph!r}` names a graph stored in a MuData, but the model's "
                "data is an AnnData; pass the GuidanceGraph object instead."
            )
        graph = GuidanceGraph.from_mudata(adata, graph)
    if not isinstance(graph, GuidanceGraph):
        raise TypeError(
            "`guidance_graph` must be a GuidanceGraph (from mosaicvi.data.guidance_graph), the "
            f"key it was stored under, or None; got {type(graph).__name__}."
        )
    covered = [m for m in feature_names if m in graph.kinds]
    if not covered:
        raise ValueError(
            f"The guidance graph covers modalities {graph.modalities}, none of the model's "
            f"({list(feature_names)})."
        )
    positions = []
    for m, names in feature_names.items():
        if m not in graph.kinds:
            logger.info(
                "Modality %r is not in the guidance graph; its features get self-loops.", m
            )
            positions.append(np.full(len(names), -1))
            continue
        in_graph = graph.feature_names[graph.modality_of_feature.to_numpy() == m]
        where = in_graph.get_indexer(names)
        extra = in_graph.difference(names)
        if (where < 0).any() or len(extra):
            missing = names[where < 0]
            raise ValueError(
                f"The guidance graph was built on other {m!r} features than the model's: "
                f"{len(missing)} model features are not in it (e.g. {missing[:3].tolist()}) and "
                f"{len(extra)} graph features are not in the model (e.g. {extra[:3].tolist()}). "
                "Build the graph again on the data the model is set up with."
            )
        positions.append(graph.feature_names.get_indexer(names[where >= 0]))
    positions = np.concatenate(positions)
    inside = positions >= 0
    signed = graph.signed()
    local = np.flatnonzero(inside)
    subset = signed[positions[inside]][:, positions[inside]].tocoo()
    n = len(positions)
    rows = np.concatenate([local[subset.row], np.flatnonzero(~inside)])
    cols = np.concatenate([local[subset.col], np.flatnonzero(~inside)])
    values = np.concatenate([subset.data, np.ones((~inside).sum(), dtype=np.float32)])
    resolved = sp.csr_matrix((values, (rows, cols)), shape=(n, n), dtype=np.float32)
    _warn_if_no_cross_links(resolved, feature_names)
    return resolved


def _warn_if_no_cross_links(graph: sp.csr_matrix, feature_names: dict[str, pd.Index]) -> None:
    codes = np.repeat(np.arange(len(feature_names)), [len(v) for v in feature_names.values()])
    coo = graph.tocoo()
    if not np.any(codes[coo.row] != codes[coo.col]) and len(feature_names) > 1:
        logger.warning(
            "The guidance graph has no edge between features of different modalities, so it "
            "cannot tie the modalities together."
        )


def default_graph_weight(presence: np.ndarray) -> float:
    """Weight of ``z V^T`` in the hybrid decoders: 0.9 with paired modalities, else 0.99.

    As mmAAVI: when no two modalities share more than :data:`MIN_PAIRED_CELLS` cells, the graph
    is the only thing tying them together, and the decoders lean on it almost entirely.
    """
    presence = np.asarray(presence, dtype=np.int64)
    shared = presence.T @ presence
    np.fill_diagonal(shared, 0)
    return 0.9 if shared.max(initial=0) > MIN_PAIRED_CELLS else 0.99
