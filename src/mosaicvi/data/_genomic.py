"""Gene coordinates for the guidance graph: bundled gene tables, BED files, matching genes.

Coordinate conventions (half-open, 0-based starts, chromosome spellings) are those of
:mod:`mosaicvi.data._intervals`.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import warnings
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

from mosaicvi.data._intervals import (
    find_column,
    normalise_chrom,
    normalise_strand,
    parse_regions,
    regions_from_columns,
)

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)

#: Columns holding gene symbols / gene ids, in order of preference.
SYMBOL_COLUMNS = (
    "gene_symbols",
    "gene_symbol",
    "gene_name",
    "gene_names",
    "symbol",
    "feature_name",
)
GENE_ID_COLUMNS = ("gene_ids", "gene_id", "ensembl_id", "gene_ensembl_id")
ENSEMBL_ID_PATTERN = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")


class BundledGenes(NamedTuple):
    """A gene table shipped in ``mosaicvi/data/annotations`` (see the README there)."""

    file: str
    description: str


#: Bundled gene tables by genome name, and the names accepted for them (lower case).
BUNDLED_GENOMES = {
    "GRCh38": BundledGenes("hg38_genes_ensembl93.bed.gz", "human GRCh38, Ensembl 93"),
    "GRCm38": BundledGenes("mm10_genes_ensembl100.bed.gz", "mouse GRCm38/mm10, Ensembl 100"),
}
GENOME_ALIASES = {"grch38": "GRCh38", "hg38": "GRCh38", "grcm38": "GRCm38", "mm10": "GRCm38"}
ACCEPTED_GENOMES = "'GRCh38' (or 'hg38'), 'GRCm38' (or 'mm10')"
#: ``"auto"`` refuses the best bundled table when it places fewer than this share of the genes.
AUTO_MIN_MATCHED = 0.1


class GeneRegions(NamedTuple):
    """Gene coordinates matched to the features of an RNA modality.

    ``table`` has one row per (feature, locus): ``feature`` (position in ``var``), ``chrom``
    (normalised), ``start``, ``end``, ``strand`` (``+``, ``-`` or ``.`` for unknown) and
    ``chrom_name`` (as spelled in the source); a gene may have several loci. ``source``
    describes where the coordinates came from.
    """

    table: pd.DataFrame
    source: str


def _strip_version(ids: pd.Series) -> pd.Series:
    return ids.astype(str).str.strip().str.replace(r"\.\d+$", "", regex=True)


def looks_like_ensembl(names: pd.Index | pd.Series) -> bool:
    """Whether most names are Ensembl gene ids (``ENSG00000123456``, optionally versioned)."""
    names = pd.Series(np.asarray(names, dtype=object)).astype(str)
    return len(names) > 0 and names.str.match(ENSEMBL_ID_PATTERN).mean() > 0.5


def gene_symbols(adata: AnnData) -> pd.Series:
    """Gene symbol of each feature: ``var_names``, or a symbol column when names are Ensembl ids."""
    if looks_like_ensembl(adata.var_names):
        column = find_column(adata.var, SYMBOL_COLUMNS)
        if column is not None:
            return adata.var[column].astype(str).reset_index(drop=True)
    return pd.Series(adata.var_names.astype(str), dtype=object)


def gene_ids(adata: AnnData) -> pd.Series | None:
    """Ensembl-style gene id of each feature (version stripped), or None when there are none."""
    if looks_like_ensembl(adata.var_names):
        return _strip_version(pd.Series(adata.var_names, dtype=object))
    column = find_column(adata.var, GENE_ID_COLUMNS)
    if column is not None and looks_like_ensembl(adata.var[column]):
        return _strip_version(adata.var[column].reset_index(drop=True))
    return None


@lru_cache(maxsize=len(BUNDLED_GENOMES))
def bundled_gene_table(genome: str = "GRCh38") -> pd.DataFrame:
    """A shipped gene table (chrom, start, end, name, score, strand, gene_id, gene_type)."""
    source = resources.files("mosaicvi.data") / "annotations" / BUNDLED_GENOMES[genome].file
    with resources.as_file(source) as path:
        table = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=["chrom", "start", "end", "name", "score", "strand", "gene_id", "gene_type"],
            dtype={"chrom": str, "name": str, "strand": str, "gene_id": str, "gene_type": str},
        )
    return table


def _bundled_source(genome: str) -> str:
    return f"the bundled {genome} gene table ({BUNDLED_GENOMES[genome].description})"


def read_bed(path: str | os.PathLike) -> pd.DataFrame:
    """Read a BED4+ gene file: chrom, start, end, name[, score, strand, extra id columns...]."""
    opener = gzip.open if os.fspath(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        header_lines = 0
        for line in handle:
            if line.strip() and not line.startswith(("track", "browser", "#")):
                break
            header_lines += 1
    try:
        table = pd.read_csv(
            path, sep="\t", header=None, comment="#", dtype=str, skiprows=header_lines
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(
            f"Cannot read `gene_coordinates={os.fspath(path)!r}` as a tab-separated BED file: "
            f"{error}"
        ) from error
    if table.shape[1] < 4:
        raise ValueError(
            f"`gene_coordinates={os.fspath(path)!r}` has {table.shape[1]} columns; a gene BED file "
            "needs at least chrom, start, end and name (BED4), ideally also score and strand."
        )
    names = ["chrom", "start", "end", "name", "score", "strand"][: table.shape[1]]
    names += [f"id{i}" for i in range(table.shape[1] - len(names))]
    table.columns = names
    table["start"] = pd.to_numeric(table["start"], errors="coerce")
    table["end"] = pd.to_numeric(table["end"], errors="coerce")
    return table


def _table_from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A user gene table as (name, id columns, chrom, start, end, strand)."""
    regions = regions_from_columns(frame, "`gene_coordinates`")
    if regions is None:
        raise ValueError(
            "`gene_coordinates` DataFrame needs columns chrom, start and end (and optionally "
            f"strand, and gene_name / gene_id); it has {list(frame.columns)}."
        )
    name = find_column(frame, ("gene_name", "name", *SYMBOL_COLUMNS))
    table = regions.assign(
        name=(frame[name] if name is not None else frame.index).astype(str).to_numpy()
    )
    gid = find_column(frame, GENE_ID_COLUMNS)
    if gid is not None:
        table["gene_id"] = frame[gid].astype(str).to_numpy()
    return table


def _match(rna_keys: pd.Series, table_keys: pd.Series) -> pd.DataFrame:
    """(feature, row) pairs where a feature key equals a table key."""
    left = pd.DataFrame({"feature": np.arange(len(rna_keys)), "key": rna_keys.to_numpy()})
    right = pd.DataFrame({"row": np.arange(len(table_keys)), "key": table_keys.to_numpy()})
    right = right[right["key"].notna() & (right["key"] != "")]
    return left.merge(right, on="key")[["feature", "row"]]


def match_genes(adata: AnnData, table: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``table`` for each feature: by Ensembl id where possible, then by symbol.

    ``table`` has ``name`` and optional id columns (``gene_id`` or ``id*``). Symbols match
    exactly (case matters: a human table must not silently match mouse symbols).
    """
    pairs = []
    ids = gene_ids(adata)
    id_columns = [c for c in table.columns if c == "gene_id" or re.fullmatch(r"id\d+", str(c))]
    if ids is not None:
        for column in id_columns:
            pairs.append(_match(ids, _strip_version(table[column].fillna(""))))
    by_id = pd.concat(pairs) if pairs else pd.DataFrame({"feature": [], "row": []}, dtype=int)
    symbols = gene_symbols(adata)
    unmatched = ~np.isin(np.arange(adata.n_vars), by_id["feature"].to_numpy())
    by_name = _match(symbols.where(unmatched, None), table["name"].astype(str))
    return pd.concat([by_id, by_name]).drop_duplicates().sort_values(["feature", "row"])


def _regions_from_var(adata: AnnData, where: str) -> tuple[pd.DataFrame | None, str | None]:
    """Gene coordinates in ``var`` (chrom/start/end columns, else ``interval``), or None."""
    regions = regions_from_columns(adata.var, where)
    source = f"{where}.var chrom/start/end"
    if regions is None and "interval" in adata.var.columns:
        regions = parse_regions(adata.var["interval"])
        regions["strand"] = "."
        source = f"{where}.var['interval']"
    if regions is None:
        return None, None
    regions["feature"] = np.arange(adata.n_vars)
    return regions, source


def _pick_bundled(adata: AnnData, where: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The bundled table that places the most genes: (table, matched pairs, source)."""
    found = {}
    for genome in BUNDLED_GENOMES:
        table = bundled_gene_table(genome)
        pairs = match_genes(adata, table)
        found[genome] = (table, pairs, pairs["feature"].nunique())
    best = max(found, key=lambda genome: found[genome][2])
    counts = ", ".join(f"{g} {n} of {adata.n_vars}" for g, (_, _, n) in found.items())
    if found[best][2] < max(1.0, AUTO_MIN_MATCHED * adata.n_vars):
        symbols = gene_symbols(adata)
        raise ValueError(
            f"`gene_coordinates='auto'`: {where}.var has no chrom/start/end or 'interval' "
            f"columns, and no bundled gene table matches enough of its genes (genes matched: "
            f"{counts}; e.g. {symbols[:3].tolist()}). Pass `gene_coordinates=` 'GRCh38' or "
            "'GRCm38' to use one anyway, a BED file or a DataFrame with chrom/start/end for the "
            "genome and gene names of this data, or None to skip gene-peak links."
        )
    logger.info(
        "%s: gene coordinates from the bundled %s table (genes matched: %s)", where, best, counts
    )
    return found[best][0], found[best][1], _bundled_source(best)


def _gene_table(
    adata: AnnData, gene_coordinates: str | os.PathLike | pd.DataFrame, where: str
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The gene table that ``gene_coordinates`` names: (table, matched pairs, source)."""
    if isinstance(gene_coordinates, str) and gene_coordinates.lower() == "auto":
        return _pick_bundled(adata, where)
    if isinstance(gene_coordinates, pd.DataFrame):
        table, source = _table_from_frame(gene_coordinates), "the `gene_coordinates` DataFrame"
    elif isinstance(gene_coordinates, str) and gene_coordinates.lower() in GENOME_ALIASES:
        genome = GENOME_ALIASES[gene_coordinates.lower()]
        table, source = bundled_gene_table(genome), _bundled_source(genome)
    elif isinstance(gene_coordinates, str | os.PathLike):
        if not os.path.exists(gene_coordinates):
            raise ValueError(
                f"`gene_coordinates={os.fspath(gene_coordinates)!r}` is neither 'auto', a bundled "
                f"genome ({ACCEPTED_GENOMES}) nor an existing BED file; for another assembly pass "
                "a BED file or a DataFrame with chrom/start/end."
            )
        table, source = read_bed(gene_coordinates), f"{os.fspath(gene_coordinates)!r}"
    else:
        raise TypeError(
            f"`gene_coordinates` must be 'auto', a bundled genome ({ACCEPTED_GENOMES}), a path "
            "to a BED file or a DataFrame with chrom/start/end columns, not "
            f"{type(gene_coordinates).__name__}."
        )
    return table, match_genes(adata, table), source


def gene_regions(
    adata: AnnData,
    gene_coordinates: str | os.PathLike | pd.DataFrame,
    where: str,
) -> GeneRegions:
    """Coordinates of the genes of an RNA modality (see :func:`guidance_graph`).

    Raises
    ------
    ValueError
        If no gene gets coordinates, or ``"auto"`` finds no table that fits.
    """
    regions, source = None, None
    if isinstance(gene_coordinates, str) and gene_coordinates.lower() == "auto":
        regions, source = _regions_from_var(adata, where)
    if regions is None:
        table, pairs, source = _gene_table(adata, gene_coordinates, where)
        if "strand" in table.columns:
            strand = normalise_strand(table["strand"].fillna("."))
        else:
            strand = np.full(len(table), ".", dtype=object)
        rows = pairs["row"].to_numpy()
        regions = pd.DataFrame(
            {
                "feature": pairs["feature"].to_numpy(),
                "chrom": table["chrom"].to_numpy()[rows],
                "start": table["start"].to_numpy()[rows],
                "end": table["end"].to_numpy()[rows],
                "strand": strand[rows],
            }
        )
    known = regions["chrom"].notna() & regions["start"].notna() & regions["end"].notna()
    regions = regions.loc[known].reset_index(drop=True)
    n_found = regions["feature"].nunique()
    if n_found == 0:
        symbols = gene_symbols(adata)
        raise ValueError(
            f"No gene of {where} got coordinates from {source} (genes e.g. "
            f"{symbols[:3].tolist()}). Pass `gene_coordinates=` the bundled genome of this data "
            f"({ACCEPTED_GENOMES}), a BED file or a DataFrame with chrom/start/end for the genome "
            "and gene names of this data, or `gene_coordinates=None` to skip gene-peak links."
        )
    if n_found < 0.5 * adata.n_vars:
        warnings.warn(
            f"Only {n_found} of {adata.n_vars} genes of {where} have coordinates in {source}; "
            "the others get no gene-peak link. Check the genome and gene naming, or pass "
            "`gene_coordinates=`.",
            UserWarning,
            stacklevel=3,
        )
    regions["chrom_name"] = regions["chrom"].astype(str)
    regions["chrom"] = normalise_chrom(regions["chrom"])
    return GeneRegions(
        regions[["feature", "chrom", "start", "end", "strand", "chrom_name"]], source
    )
