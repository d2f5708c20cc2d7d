"""Map antibody-derived tag (ADT) names to the genes that encode their targets.

Resolution order for each protein (see :func:`link_proteins_to_genes`): the user's
``protein_to_gene`` mapping, isotype controls (never linked), the curated ADT table shipped in
``mosaicvi/data/annotations/adt_to_gene.tsv``, the name as an official gene symbol, and finally
the org.Hs.eg.db alias table (only when the alias names exactly one gene). Names are compared
after :func:`protein_key` normalisation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

CURATED_TABLE = "adt_to_gene.tsv"
ALIAS_TABLE = "hs_gene_aliases_orgHsEgDb_3.16.tsv.gz"
#: Panel / modality suffixes: ``_TotalSeqB``, ``-TotalSeqA``, ``_prot``, ``_protein``, ``_ADT``.
_SUFFIX = re.compile(
    r"(?:[\s_.\-]*total[\s_.\-]?seq[\s_.\-]?[abc]|[\s_.\-]+(?:prot|protein|adt))$", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[\s._/]+")
#: A duplicate suffix as added by Seurat (``.1``) or ``var_names_make_unique`` (``-1``).
_DUPLICATE = re.compile(r"-\d$")
_ISOTYPE = re.compile(
    r"isotype|ctrl|control|(?:^|-)(?:mouse|rat|hamster|armenian-hamster|ms|rt)-?igg|^igg\d"
)

#: Note categories (``GuidanceGraph.notes["category"]``) set by the protein mapping.
ISOTYPE = "isotype control"
AMBIGUOUS = "ambiguous alias"
NOT_MEASURED = "gene not measured"
NO_GENE = "no gene found"
USER_NONE = "no link requested"


def protein_key(name: str) -> str:
    """Normalised protein name: panel suffixes stripped, lower case, separators as ``-``.

    Examples
    --------
    >>> protein_key("CD8a_TotalSeqB"), protein_key("HLA_DR"), protein_key("TCRVa7.2")
    ('cd8a', 'hla-dr', 'tcrva7-2')
    """
    name = str(name).strip()
    while True:
        stripped = _SUFFIX.sub("", name)
        if stripped == name or not stripped:
            break
        name = stripped
    return _SEPARATORS.sub("-", name.lower()).strip("-")


@lru_cache(maxsize=1)
def curated_table() -> dict[str, tuple[str, ...]]:
    """Curated ADT key -> gene symbols (MIDAS table, corrected and extended; see README)."""
    source = resources.files("mosaicvi.data") / "annotations" / CURATED_TABLE
    with resources.as_file(source) as path:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return {
        key: tuple(g.strip() for g in genes.split(",") if g.strip())
        for key, genes in zip(table["adt"], table["genes"], strict=True)
    }


@lru_cache(maxsize=1)
def alias_table() -> tuple[frozenset[str], dict[str, tuple[str, ...]]]:
    """Official human symbols (upper case) and alias key -> symbols (org.Hs.eg.db 3.16)."""
    source = resources.files("mosaicvi.data") / "annotations" / ALIAS_TABLE
    with resources.as_file(source) as path:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    aliases: dict[str, set[str]] = {}
    for symbol, names in zip(table["symbol"], table["aliases"], strict=True):
        for alias in names.split("|") if names else ():
            aliases.setdefault(protein_key(alias), set()).add(symbol)
    symbols = frozenset(s.upper() for s in table["symbol"])
    return symbols, {k: tuple(sorted(v)) for k, v in aliases.items()}


@dataclass
class ProteinLinks:
    """Result of :func:`link_proteins_to_genes`.

    ``protein`` and ``gene`` are positions (one row per link); ``notes`` maps the position of
    each unlinked protein to ``(category, detail)``; ``ambiguous`` maps protein names to the
    candidate genes measured.
    """

    protein: np.ndarray
    gene: np.ndarray
    notes: dict[int, tuple[str, str]] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)


class _GeneIndex:
    """Look up gene symbols among the features of the RNA modality (exact, then any case)."""

    def __init__(self, symbols: Sequence[str]):
        self.exact: dict[str, int] = {}
        self.upper: dict[str, int] = {}
        for i, symbol in enumerate(symbols):
            self.exact.setdefault(symbol, i)
            self.upper.setdefault(symbol.upper(), i)

    def find(self, symbol: str) -> int | None:
        found = self.exact.get(symbol)
        return found if found is not None else self.upper.get(symbol.upper())


def _user_lookup(
    protein_to_gene: Mapping[str, str | Sequence[str] | None],
) -> dict[str, tuple[str, ...]]:
    lookup = {}
    for name, genes in protein_to_gene.items():
        if genes is None:
            genes = ()
        elif isinstance(genes, str):
            genes = (genes,)
        elif not all(isinstance(g, str) for g in genes):
            raise TypeError(
                f"`protein_to_gene[{name!r}]` must be a gene symbol, a list of symbols or None; "
                f"got {genes!r}."
            )
        lookup[str(name)] = tuple(genes)
        lookup.setdefault(protein_key(name), tuple(genes))
    return lookup


def link_proteins_to_genes(
    proteins: Sequence[str],
    symbols: Sequence[str],
    protein_to_gene: Mapping[str, str | Sequence[str] | None] | None = None,
) -> ProteinLinks:
    """Link each protein to the genes (among ``symbols``) encoding its target.

    Parameters
    ----------
    proteins
        Protein (ADT) names.
    symbols
        Gene symbols of the RNA features, in feature order.
    protein_to_gene
        Protein name -> gene symbol(s), or None for "no link"; takes precedence over everything
        else. Keys match the exact name or its normalised form (``CD16`` matches
        ``CD16_TotalSeqB``).

    Returns
    -------
    The links and, for each protein without one, why.
    """
    user = _user_lookup(protein_to_gene or {})
    curated = curated_table()
    official, aliases = alias_table()
    genes = _GeneIndex(symbols)
    protein_rows, gene_rows = [], []
    result = ProteinLinks(np.array([], dtype=np.int64), np.array([], dtype=np.int64))

    def measured(candidates: Sequence[str]) -> list[int]:
        found = (genes.find(g) for g in candidates)
        return sorted({i for i in found if i is not None})

    for position, name in enumerate(proteins):
        key = protein_key(name)
        keys = [key]
        if _DUPLICATE.search(key):
            keys.append(_DUPLICATE.sub("", key))
        linked, note = None, None
        wanted = user.get(str(name), next((user[k] for k in keys if k in user), None))
        if wanted is not None:
            linked = measured(wanted)
            if not wanted:
                note = (USER_NONE, "protein_to_gene maps it to None")
            elif not linked:
                note = (NOT_MEASURED, f"protein_to_gene names {', '.join(wanted)}")
        elif _ISOTYPE.search(key):
            linked, note = [], (ISOTYPE, "")
        else:
            for k in keys:
                if k in curated:
                    linked = measured(curated[k])
                    if not curated[k]:
                        note = (NO_GENE, "no single target gene (curated table)")
                    elif not linked:
                        note = (NOT_MEASURED, ", ".join(curated[k]))
                elif genes.find(k) is not None:
                    linked = [genes.find(k)]
                elif k.upper() in official:
                    linked, note = [], (NOT_MEASURED, k.upper())
                elif k in aliases:
                    candidates = aliases[k]
                    present = measured(candidates)
                    if len(candidates) == 1:
                        linked = present
                        if not linked:
                            note = (NOT_MEASURED, candidates[0])
                    elif present:
                        linked = []
                        note = (AMBIGUOUS, ", ".join(symbols[i] for i in present))
                        result.ambiguous[str(name)] = [symbols[i] for i in present]
                    else:
                        linked, note = [], (NOT_MEASURED, ", ".join(candidates))
                if linked is not None:
                    break
        if linked is None:
            linked, note = [], (NO_GENE, "")
        protein_rows += [position] * len(linked)
        gene_rows += linked
        if not linked:
            result.notes[position] = note
    result.protein = np.asarray(protein_rows, dtype=np.int64)
    result.gene = np.asarray(gene_rows, dtype=np.int64)
    return result
