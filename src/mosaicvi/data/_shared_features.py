"""Links between two modalities of the same kind: shared names or an ortholog table.

Two RNA modalities of different species (human and mouse genes) or two ADT panels share no
cells and no features, so nothing in the data ties them; :func:`shared_feature_links` links the
features that measure the same thing (the same protein, orthologous genes) so that the guidance
graph does. Matching is case-insensitive, and only one-to-one matches are linked by default:
names that match several features on either side are reported, never guessed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from mosaicvi.data._genomic import gene_symbols
from mosaicvi.data._protein_names import protein_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mudata import MuData

_AMBIGUOUS_COLUMNS = ["source", "target", "name", "reason"]


@dataclass
class FeatureLinks:
    """Result of :func:`shared_feature_links`.

    Attributes
    ----------
    source, target
        The two modalities.
    edges
        One row per link: ``source`` and ``target`` feature names (``var_names``), ``weight``
        (1.0) and ``name`` (the normalised name or ortholog pair that matched). Pass it to
        :func:`mosaicvi.data.guidance_graph` as ``links={(source, target): edges}`` (or
        :attr:`links`).
    ambiguous
        Candidate pairs that were not linked because a feature matched several features of the
        other modality (or a name several features of its own): columns ``source``, ``target``,
        ``name`` and ``reason``. Empty when ``one_to_one=False``.
    unlinked
        Modality -> names of its features without a link.
    n_table_rows_unmeasured
        Rows of the ortholog table naming a feature that one of the modalities does not have
        (0 when matching by name).
    """

    source: str
    target: str
    edges: pd.DataFrame
    ambiguous: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=_AMBIGUOUS_COLUMNS)
    )
    unlinked: dict[str, pd.Index] = field(default_factory=dict)
    n_table_rows_unmeasured: int = 0

    @property
    def links(self) -> dict[tuple[str, str], pd.DataFrame]:
        """``{(source, target): edges}``, the ``links=`` argument of the guidance graph."""
        return {(self.source, self.target): self.edges[["source", "target", "weight"]]}

    def summary(self) -> pd.Series:
        """Counts: links, ambiguous candidate pairs, unlinked features per modality."""
        counts = {
            "links": len(self.edges),
            "ambiguous pairs": len(self.ambiguous),
            **{f"unlinked {m}": len(names) for m, names in self.unlinked.items()},
        }
        if self.n_table_rows_unmeasured:
            counts["table rows not measured"] = self.n_table_rows_unmeasured
        return pd.Series(counts, name=f"{self.source} - {self.target}")


def _normaliser(normalize: str):
    if normalize == "case":
        return lambda name: str(name).strip().casefold()
    if normalize == "protein":
        return protein_key
    raise ValueError(f"`normalize` must be 'case' or 'protein', not {normalize!r}.")


def _names(mdata: MuData, modality: str, symbols: Mapping[str, str] | None) -> pd.Series:
    """The names to match for each feature of ``modality`` (a var column or the symbols)."""
    if modality not in mdata.mod:
        raise ValueError(
            f"{modality!r} is not a modality of the MuData; modalities: {list(mdata.mod)}."
        )
    adata = mdata.mod[modality]
    column = (symbols or {}).get(modality)
    if column is None:
        return gene_symbols(adata)
    if column not in adata.var:
        raise ValueError(
            f"`symbols[{modality!r}]` is {column!r}, which is not a column of "
            f"mdata.mod[{modality!r}].var (columns: {list(adata.var.columns)[:10]})."
        )
    values = adata.var[column]
    if values.isna().any():
        raise ValueError(
            f"mdata.mod[{modality!r}].var[{column!r}] has {int(values.isna().sum())} missing "
            "names; fill them (e.g. with the var_names) before matching."
        )
    return values.astype(str).reset_index(drop=True)


def _table_pairs(
    orthologs: pd.DataFrame, source: str, target: str, normal
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(orthologs, pd.DataFrame):
        raise TypeError(
            f"`orthologs` must be a DataFrame with two columns, not {type(orthologs).__name__}."
        )
    if {source, target} <= set(orthologs.columns):
        pairs = orthologs[[source, target]]
    elif orthologs.shape[1] == 2:
        pairs = orthologs
    else:
        raise ValueError(
            f"`orthologs` must have exactly two columns (names in {source!r}, names in "
            f"{target!r}) or columns named {source!r} and {target!r}; it has "
            f"{list(orthologs.columns)}."
        )
    pairs = pairs.dropna()
    return (
        np.array([normal(n) for n in pairs.iloc[:, 0]], dtype=object),
        np.array([normal(n) for n in pairs.iloc[:, 1]], dtype=object),
    )


def shared_feature_links(
    mdata: MuData,
    source: str,
    target: str,
    orthologs: pd.DataFrame | None = None,
    *,
    symbols: Mapping[str, str] | None = None,
    normalize: Literal["case", "protein"] = "case",
    one_to_one: bool = True,
) -> FeatureLinks:
    """Link the features of two modalities of the same kind that share a name or are orthologs.

    For cross-species integration (human and mouse RNA as two modalities) or two ADT panels
    with partly different antibodies: the two modalities share no cell, so the guidance graph's
    links between them are what puts them into one latent space (see the example).

    Without ``orthologs``, features whose names match after normalisation are linked
    (case-insensitive: ``CD4`` links ``Cd4``). With ``orthologs``, the table's rows are the
    candidate pairs, each side matched to its modality's names the same way.

    With ``one_to_one=True`` (default), a candidate pair is linked only if neither feature has
    another candidate partner: a name that several features of one modality share (``Gene5``
    and ``GENE5``), or an ortholog row of a one-to-many group, gives no link. Such pairs are not
    dropped silently: they are listed in :attr:`FeatureLinks.ambiguous` and a warning counts
    them. Fix them with an ortholog table, or link every candidate with ``one_to_one=False``.

    Parameters
    ----------
    mdata
        MuData holding both modalities (only their ``var`` is read).
    source, target
        The two modality names, e.g. ``"rna_human"`` and ``"rna_mouse"``.
    orthologs
        Optional table of candidate pairs: two columns (names in ``source``, names in
        ``target``), or columns named after the two modalities. Rows naming features a modality
        does not have are skipped and counted.
    symbols
        Modality -> ``var`` column holding the names to match (e.g. when ``var_names`` carry a
        panel suffix to keep them unique). Default: the ``var_names``, or a gene-symbol column
        when they are Ensembl ids.
    normalize
        ``"case"``: compare names case-insensitively. ``"protein"``: also drop ADT panel
        suffixes (``_TotalSeqB``, ``_prot``, ...) and unify separators, as the gene-protein
        links of :func:`~mosaicvi.data.guidance_graph` do.
    one_to_one
        Link only one-to-one matches (see above).

    Returns
    -------
    :class:`FeatureLinks`: ``links`` for the guidance graph, plus what was ambiguous or unlinked.

    Raises
    ------
    ValueError
        If a modality is missing, ``source == target``, a ``symbols`` column is missing, or no
        pair of features matches at all.

    Examples
    --------
    Two ADT panels (different donors, 14 shared antibodies) with their own ``var_names``
    suffixes, tied only through the graph:

    >>> import mosaicvi
    >>> found = mosaicvi.data.shared_feature_links(
    ...     mdata, "adt_panel_a", "adt_panel_b", symbols={"adt_panel_a": "protein",
    ...     "adt_panel_b": "protein"}, normalize="protein"
    ... )  # doctest: +SKIP
    >>> found.summary()  # doctest: +SKIP
    >>> graph = mosaicvi.data.guidance_graph(
    ...     mdata, {"adt_panel_a": "adt", "adt_panel_b": "adt"}, links=found.links
    ... )  # doctest: +SKIP

    Human and mouse RNA with an ortholog table (columns ``human``, ``mouse``):

    >>> found = mosaicvi.data.shared_feature_links(
    ...     mdata, "rna_human", "rna_mouse", orthologs=table[["human", "mouse"]]
    ... )  # doctest: +SKIP
    """
    if source == target:
        raise ValueError(
            f"`source` and `target` must be two different modalities, not {source!r}."
        )
    normal = _normaliser(normalize)
    names = {m: _names(mdata, m, symbols) for m in (source, target)}
    keys = {m: np.array([normal(n) for n in names[m]], dtype=object) for m in names}
    positions = {
        m: pd.Series(np.arange(len(keys[m]))).groupby(keys[m]).agg(list).to_dict() for m in keys
    }

    unmeasured = 0
    if orthologs is None:
        shared = sorted(set(positions[source]) & set(positions[target]))
        pair_keys = [(k, k) for k in shared]
    else:
        left, right = _table_pairs(orthologs, source, target, normal)
        measured = np.array(
            [
                a in positions[source] and b in positions[target]
                for a, b in zip(left, right, strict=True)
            ],
            dtype=bool,
        )
        unmeasured = int((~measured).sum())
        pair_keys = list(dict.fromkeys(zip(left[measured], right[measured], strict=True)))
    rows, cols, labels = [], [], []
    for a, b in pair_keys:
        for i in positions[source][a]:
            for j in positions[target][b]:
                rows.append(i)
                cols.append(j)
                labels.append(a if a == b else f"{a} ~ {b}")
    candidates = pd.DataFrame({"row": rows, "col": cols, "name": labels}).drop_duplicates(
        ["row", "col"]
    )
    if candidates.empty:
        examples = {m: names[m].head(3).tolist() for m in names}
        how = (
            "no row of `orthologs` names features of both"
            if orthologs is not None
            else ("no name is shared by")
        )
        raise ValueError(
            f"{how} {source!r} and {target!r} (after normalize={normalize!r}); names look like "
            f"{examples}. Check `symbols=` (which var column holds the names) and `normalize=`."
        )
    out_degree = candidates["row"].map(candidates["row"].value_counts())
    in_degree = candidates["col"].map(candidates["col"].value_counts())
    unique = (out_degree == 1) & (in_degree == 1)
    if not one_to_one:
        unique[:] = True
    kept, dropped = candidates[unique], candidates[~unique]
    features = {m: mdata.mod[m].var_names for m in (source, target)}
    edges = pd.DataFrame(
        {
            "source": features[source][kept["row"].to_numpy()],
            "target": features[target][kept["col"].to_numpy()],
            "weight": 1.0,
            "name": kept["name"].to_numpy(),
        }
    )
    reasons = [
        f"{source} feature has {o} candidates" if o > 1 else f"{target} feature has {i} candidates"
        for o, i in zip(out_degree[~unique], in_degree[~unique], strict=True)
    ]
    ambiguous = pd.DataFrame(
        {
            "source": features[source][dropped["row"].to_numpy()],
            "target": features[target][dropped["col"].to_numpy()],
            "name": dropped["name"].to_numpy(),
            "reason": reasons,
        },
        columns=_AMBIGUOUS_COLUMNS,
    )
    linked = {source: set(kept["row"]), target: set(kept["col"])}
    unlinked = {
        m: features[m][[p for p in range(len(features[m])) if p not in linked[m]]]
        for m in (source, target)
    }
    if len(ambiguous):
        listed = "; ".join(
            f"{s} - {t}"
            for s, t in zip(ambiguous["source"][:5], ambiguous["target"][:5], strict=True)
        )
        warnings.warn(
            f"{len(ambiguous)} candidate pairs between {source!r} and {target!r} are not "
            f"one-to-one and got no link (e.g. {listed}); see `.ambiguous`, resolve them with "
            "an ortholog table, or pass one_to_one=False to link them all.",
            UserWarning,
            stacklevel=2,
        )
    return FeatureLinks(source, target, edges, ambiguous, unlinked, unmeasured)
