"""A prior-knowledge feature graph over the modalities of a MuData (gene-peak, gene-protein links).

The graph ties features of different modalities that are expected to co-vary: a gene and the
peaks at its promoter and body, a protein and the gene(s) that encode it, or any link matrix the
user supplies. It is sparse, symmetric, weighted (weights in ``(0, 1]`` for the built-in rules)
and signed, with a self-loop on every feature. Everything is computed and checked before
``mdata`` is written to, so a failed call leaves it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mosaicvi.data._protein_names import AMBIGUOUS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mudata import MuData

    LinkSpec = sp.spmatrix | sp.sparray | np.ndarray | pd.DataFrame

#: Note category of genes that got no coordinates.
NO_COORDINATES = "no coordinates"
_NOTE_COLUMNS = ["modality", "category", "detail"]


@dataclass
class GuidanceGraph:
    """Feature x feature guidance graph over the modalities of a MuData.

    Features are in model order: modality by modality (the order of ``modalities``), each in its
    ``var`` order. The signed graph stored in ``mdata.varp`` is ``weights`` times ``signs``.

    Attributes
    ----------
    weights
        CSR ``float32`` adjacency, symmetric, non-negative, 1 on the diagonal (self-loops).
    signs
        CSR ``int8`` matrix with the same sparsity as ``weights``: +1 or -1 per edge
        (the built-in rules give +1; user links may give -1).
    feature_names
        Names of the features, in model order.
    modality_of_feature
        Modality of each feature (categorical Series indexed by feature name).
    kinds
        Modality name -> kind (``"rna"``, ``"atac"``, ``"adt"`` or ``"counts"``), in model order.
    notes
        Features that need attention, indexed by feature name, with columns ``modality``,
        ``category`` (``"isotype control"``, ``"ambiguous alias"``, ``"gene not measured"``,
        ``"no gene found"``, ``"no link requested"``, ``"no coordinates"``) and ``detail``.
    params
        The parameters the graph was built with (``promoter``, ``extend``).
    """

    weights: sp.csr_matrix
    signs: sp.csr_matrix
    feature_names: pd.Index
    modality_of_feature: pd.Series
    kinds: dict[str, str]
    notes: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=_NOTE_COLUMNS))
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        """Modality names in model order."""
        return list(self.kinds)

    @property
    def n_features(self) -> int:
        """Number of features (rows and columns of the graph)."""
        return len(self.feature_names)

    def signed(self) -> sp.csr_matrix:
        """The signed graph ``weights * signs`` (what ``mdata.varp[key]`` holds, in model order)."""
        signed = self.weights.multiply(self.signs).tocsr().astype(np.float32)
        signed.sort_indices()
        return signed

    def edges(self) -> pd.DataFrame:
        """Every edge between two different features once, as a DataFrame.

        Columns ``source``, ``target`` (source comes first in model order),
        ``source_modality``, ``target_modality``, ``weight`` and ``sign``.
        """
        upper = sp.triu(self.weights, k=1).tocoo()
        signs = np.asarray(self.signs[upper.row, upper.col]).ravel().astype(np.int8)
        modality = self.modality_of_feature.to_numpy()
        frame = pd.DataFrame(
            {
                "source": self.feature_names[upper.row],
                "target": self.feature_names[upper.col],
                "source_modality": modality[upper.row],
                "target_modality": modality[upper.col],
                "weight": upper.data,
                "sign": signs,
            }
        )
        return frame.sort_values(["source", "target"], key=_model_order(self)).reset_index(
            drop=True
        )

    def summary(self) -> pd.DataFrame:
        """Edges per modality pair and features without an edge, one row per modality.

        Columns: ``kind``; ``n_features``; ``n_linked`` / ``n_unlinked`` (features with / without
        an edge to another feature); ``edges_<modality>`` (edges to features of that modality,
        self-loops not counted); ``notes`` (counts and examples of :attr:`notes` categories,
        e.g. isotype controls and ambiguous aliases).
        """
        modalities = self.modalities
        codes = pd.Categorical(self.modality_of_feature, categories=modalities).codes
        upper = sp.triu(self.weights, k=1).tocoo()
        pair_counts = np.zeros((len(modalities), len(modalities)), dtype=np.int64)
        np.add.at(pair_counts, (codes[upper.row], codes[upper.col]), 1)
        pair_counts = pair_counts + pair_counts.T - np.diag(np.diag(pair_counts))
        degree = np.diff(self.weights.indptr) - (self.weights.diagonal() != 0)
        linked = np.bincount(codes[degree > 0], minlength=len(modalities))
        n_features = np.bincount(codes, minlength=len(modalities))
        table = pd.DataFrame(
            {
                "kind": [self.kinds[m] for m in modalities],
                "n_features": n_features,
                "n_linked": linked,
                "n_unlinked": n_features - linked,
            },
            index=pd.Index(modalities, name="modality"),
        )
        for j, other in enumerate(modalities):
            table[f"edges_{other}"] = pair_counts[:, j]
        table["notes"] = [_describe_notes(self.notes, m) for m in modalities]
        return table

    @classmethod
    def from_mudata(cls, mdata: MuData, key: str = "guidance") -> GuidanceGraph:
        """Read back the graph :func:`guidance_graph` stored in ``mdata`` under ``key``.

        Raises
        ------
        ValueError
            If ``mdata`` has no such graph, or its modalities changed since.
        """
        if key not in mdata.varp or key not in mdata.uns:
            raise ValueError(
                f"mdata has no guidance graph under {key!r} (mdata.varp / mdata.uns); build one "
                f"with `mosaicvi.data.guidance_graph(mdata, key={key!r})`."
            )
        meta = mdata.uns[key]
        modalities = [str(m) for m in meta["modalities"]]
        kinds = dict(zip(modalities, (str(k) for k in meta["kinds"]), strict=True))
        missing = [m for m in modalities if m not in mdata.mod]
        if missing:
            raise ValueError(
                f"The guidance graph {key!r} was built on modalities {modalities}; mdata no longer "
                f"has {missing}. Build it again."
            )
        names, modality = _feature_table(mdata, modalities)
        positions = _global_positions(mdata, names)
        signed = sp.csr_matrix(mdata.varp[key])[positions][:, positions].tocsr()
        signed.eliminate_zeros()
        weights = abs(signed).astype(np.float32)
        signs = signed.sign().astype(np.int8)
        notes = meta.get("notes")
        notes = pd.DataFrame(notes) if notes is not None else pd.DataFrame(columns=_NOTE_COLUMNS)
        params = {k: meta[k] for k in ("promoter", "extend") if k in meta}
        return cls(weights.tocsr(), signs.tocsr(), names, modality, kinds, notes, params)


def _model_order(graph: GuidanceGraph):
    position = pd.Series(np.arange(graph.n_features), index=graph.feature_names)

    def key(column: pd.Series) -> pd.Series:
        return column.map(position)

    return key


def _describe_notes(notes: pd.DataFrame, modality: str, n_examples: int = 5) -> str:
    parts = []
    mine = notes[notes["modality"] == modality]
    for category, group in mine.groupby("category", sort=False):
        examples = []
        for name, detail in zip(group.index[:n_examples], group["detail"], strict=False):
            examples.append(f"{name}: {detail}" if category == AMBIGUOUS and detail else name)
        more = ", ..." if len(group) > n_examples else ""
        parts.append(f"{len(group)} {category} ({'; '.join(examples)}{more})")
    return "; ".join(parts)


def _feature_table(mdata: MuData, modalities: Sequence[str]) -> tuple[pd.Index, pd.Series]:
    names = pd.Index(np.concatenate([mdata.mod[m].var_names.to_numpy() for m in modalities]))
    if not names.is_unique:
        duplicated = names[names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"Feature names repeat within or across modalities {list(modalities)} (e.g. "
            f"{duplicated}). Make them unique, e.g. suffix protein names: "
            "`mdata['adt'].var_names = mdata['adt'].var_names + '_prot'`, then `mdata.update()`."
        )
    modality = pd.Series(
        pd.Categorical(
            np.repeat(list(modalities), [mdata.mod[m].n_vars for m in modalities]),
            categories=list(modalities),
        ),
        index=names,
        name="modality",
    )
    return names, modality


def _global_positions(mdata: MuData, names: pd.Index) -> np.ndarray:
    """Position of each feature in ``mdata.var_names``."""
    if not mdata.var_names.is_unique:
        duplicated = mdata.var_names[mdata.var_names.duplicated()].unique()[:5].tolist()
        raise ValueError(
            f"mdata.var_names has duplicates (e.g. {duplicated}), so the graph cannot be stored in "
            "mdata.varp. Make feature names unique across all modalities, e.g. "
            "`mdata['adt'].var_names = mdata['adt'].var_names + '_prot'`, then `mdata.update()`."
        )
    positions = mdata.var_names.get_indexer(names)
    if np.any(positions < 0):
        raise ValueError(
            f"Features {names[positions < 0][:5].tolist()} of the modalities are not in "
            "mdata.var_names; call `mdata.update()` after changing a modality."
        )
    return positions
