"""Bring a guidance graph into a model's feature order; the defaults that depend on the pairing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from mudata import MuData
from scipy.sparse.csgraph import connected_components

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


def bridged_modality_groups(presence: np.ndarray) -> list[list[int]]:
    """Modalities (column positions) joined, directly or through others, by paired cells.

    Two modalities are joined when more than :data:`MIN_PAIRED_CELLS` cells measured both; the
    groups are the connected components of that relation. One group: every modality is tied to
    every other by paired cells. Several: some modalities share no cell with the rest (diagonal
    integration), and only the guidance graph and the prior can bring them together.
    """
    presence = np.asarray(presence, dtype=np.int64)
    joined = (presence.T @ presence) > MIN_PAIRED_CELLS
    n_components, component = connected_components(sp.csr_matrix(joined), directed=False)
    return [np.flatnonzero(component == c).tolist() for c in range(n_components)]


#: Graph loss weight (``graph_kwargs["loss_weight"]``) where paired cells join every modality.
GRAPH_LOSS_WEIGHT = 0.02

#: Options resolved for diagonal data (:func:`uses_diagonal_defaults`): the graph is then the
#: only tie between the groups of modalities, so the decoders use the inner product alone, the
#: graph NLL is weighted less (embeddings free to fit the data, still tied) and a shared mixture
#: prior gives every group the same clusters to fill. Chosen together on diagonal SNARE-seq
#: (``docs/benchmark_notes.md``, "Alignment levers, fourth round"); each alone helps less.
DIAGONAL_DEFAULTS = {"prior": "mixture", "weight": 1.0, "loss_weight": 0.005}

#: Features every modality needs for :data:`DIAGONAL_DEFAULTS`: on two antibody panels of 14 and
#: 29 proteins both the inner-product-only decoder and the mixture prior cost most of the
#: cross-panel label transfer, so small modalities keep the decoders and prior of paired data.
DIAGONAL_MIN_FEATURES = 1000


def uses_diagonal_defaults(presence: np.ndarray, n_features: Sequence[int]) -> bool:
    """Whether paired cells leave some modality apart and every modality has many features.

    ``n_features``: each modality's number of features, in the columns' order of ``presence``.
    """
    unbridged = len(bridged_modality_groups(presence)) > 1
    return unbridged and min(n_features) >= DIAGONAL_MIN_FEATURES


def default_prior(presence: np.ndarray, n_features: Sequence[int]) -> str:
    """``"mixture"`` on diagonal data with many features per modality, else ``"normal"``."""
    diagonal = uses_diagonal_defaults(presence, n_features)
    return DIAGONAL_DEFAULTS["prior"] if diagonal else "normal"


def default_graph_loss_weight(presence: np.ndarray, n_features: Sequence[int]) -> float:
    """Weight of the graph NLL per feature: :data:`GRAPH_LOSS_WEIGHT`, less on diagonal data."""
    diagonal = uses_diagonal_defaults(presence, n_features)
    return DIAGONAL_DEFAULTS["loss_weight"] if diagonal else GRAPH_LOSS_WEIGHT


def default_graph_weight(presence: np.ndarray, n_features: Sequence[int]) -> float:
    """Weight of ``z V^T`` in the hybrid decoders.

    1 (inner product only) on diagonal data with many features per modality
    (:func:`uses_diagonal_defaults`); otherwise, as mmAAVI, 0.9 when some modalities are
    measured together in more than :data:`MIN_PAIRED_CELLS` cells and 0.99 when no cell pairs
    them.
    """
    if uses_diagonal_defaults(presence, n_features):
        return DIAGONAL_DEFAULTS["weight"]
    presence = np.asarray(presence, dtype=np.int64)
    shared = presence.T @ presence
    np.fill_diagonal(shared, 0)
    return 0.9 if shared.max(initial=0) > MIN_PAIRED_CELLS else 0.99
