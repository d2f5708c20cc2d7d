"""Genomic coordinates of genes and peaks, and the gene-peak links of the guidance graph.

Intervals are half-open, ``[start, end)`` with 0-based starts as in BED; a peak and a region
overlap when ``peak.start < region.end`` and ``peak.end > region.start``. Chromosome names are
compared after dropping a ``chr`` prefix and upper-casing, with ``M`` and ``MT`` both meaning the
mitochondrion, so ``chr1``/``1`` and ``chrM``/``chrMT`` match.
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

#: Accepted spellings of the coordinate columns of ``var`` or of a gene table.
CHROM_COLUMNS = ("chrom", "chr", "chromosome", "seqnames", "seqname")
START_COLUMNS = ("start", "chromStart", "chrom_start")
END_COLUMNS = ("end", "chromEnd", "chrom_end")
STRAND_COLUMNS = ("strand",)
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
#: Names such as ``chr1-100-200``, ``chr1:100-200`` or ``chr1_100_200`` (``,`` thousands allowed).
REGION_PATTERN = re.compile(r"^\s*(?P<chrom>.+)[:_-](?P<start>[\d,]+)[_-](?P<end>[\d,]+)\s*$")
ENSEMBL_ID_PATTERN = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
#: The human gene table shipped in ``mosaicvi/data/annotations``.
BUNDLED_GENES = "hg38_genes_ensembl93.bed.gz"
BUNDLED_NAMES = ("auto", "grch38", "hg38")
#: Scale (bp) and exponent of the distance decay of links beyond the promoter window (as GLUE).
DECAY_SCALE = 1000.0
DECAY_POWER = 0.75


class GeneRegions(NamedTuple):
    """Gene coordinates matched to the features of an RNA modality.

    ``table`` has one row per (feature, locus): ``feature`` (position in ``var``), ``chrom``
    (normalised), ``start``, ``end``, ``strand`` (``+``, ``-`` or ``.`` for unknown) and
    ``chrom_name`` (as spelled in the source); a gene may have several loci. ``source``
    describes where the coordinates came from.
    """

    table: pd.DataFrame
    source: str


def normalise_chrom(values: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """Comparable chromosome names: ``chr`` prefix dropped, upper case, ``M`` -> ``MT``."""
    names = pd.Series(values, dtype=object).astype(str).str.strip()
    names = names.str.replace(r"^chr(?!omosome)", "", regex=True, flags=re.IGNORECASE).str.upper()
    return names.replace({"M": "MT"}).to_numpy(dtype=object)


def _find_column(frame: pd.DataFrame, candidates: tuple[str, ...]) -> str | None:
    lower = {str(c).lower(): c for c in frame.columns}
    for name in candidates:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def parse_regions(names: pd.Index | pd.Series | np.ndarray) -> pd.DataFrame:
    """Parse ``chr1-100-200`` / ``chr1:100-200`` / ``chr1_100_200`` names; NaN where they fail."""
    extracted = pd.Series(np.asarray(names, dtype=object)).astype(str).str.extract(REGION_PATTERN)
    regions = pd.DataFrame(
        {
            "chrom": extracted["chrom"],
            "start": pd.to_numeric(extracted["start"].str.replace(",", ""), errors="coerce"),
            "end": pd.to_numeric(extracted["end"].str.replace(",", ""), errors="coerce"),
        }
    )
    regions.loc[regions["end"] < regions["start"], ["start", "end"]] = np.nan
    return regions


def _regions_from_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame | None:
    """chrom/start/end(/strand) columns of ``frame`` as a DataFrame, or None when absent."""
    chrom, start, end = (
        _find_column(frame, c) for c in (CHROM_COLUMNS, START_COLUMNS, END_COLUMNS)
    )
    if chrom is None or start is None or end is None:
        return None
    regions = pd.DataFrame(
        {
            "chrom": frame[chrom].astype(object).where(frame[chrom].notna()).to_numpy(),
            "start": pd.to_numeric(frame[start], errors="coerce").to_numpy(),
            "end": pd.to_numeric(frame[end], errors="coerce").to_numpy(),
        }
    )
    bad = regions["end"] < regions["start"]
    if bad.any():
        example = frame.index[bad.to_numpy()][:3].tolist()
        raise ValueError(
            f"{where}: `{end}` is smaller than `{start}` for {int(bad.sum())} rows "
            f"(e.g. {example}); coordinates must be start <= end."
        )
    strand = _find_column(frame, STRAND_COLUMNS)
    regions["strand"] = normalise_strand(frame[strand]) if strand is not None else "."
    return regions


def normalise_strand(values: pd.Series) -> np.ndarray:
    """``+`` / ``-`` (also ``1`` / ``-1``), anything else ``.`` (unknown)."""
    text = values.astype(str).str.strip()
    return np.select(
        [text.isin(["+", "1", "1.0", "+1"]), text.isin(["-", "-1", "-1.0"])], ["+", "-"], "."
    ).astype(object)


def peak_regions(adata: AnnData, where: str) -> pd.DataFrame:
    """Coordinates of the peaks of an ATAC modality: ``var`` chrom/start/end, else parsed names.

    Returns a DataFrame with ``chrom`` (normalised; None where ``var`` columns are empty),
    ``start``, ``end`` and ``chrom_name`` (as spelled in the data), one row per peak in ``var``
    order.

    Raises
    ------
    ValueError
        If there are no coordinate columns and some names cannot be parsed.
    """
    regions = _regions_from_columns(adata.var, where)
    if regions is None:
        regions = parse_regions(adata.var_names)
        failed = regions["start"].isna().to_numpy()
        if failed.any():
            raise ValueError(
                f"Cannot read the peak coordinates of {where}: {int(failed.sum())} of "
                f"{adata.n_vars} var_names (e.g. {adata.var_names[failed][:3].tolist()}) are not "
                "in a recognised form (chr1-100-200, chr1:100-200 or chr1_100_200) and var has no "
                "chrom/start/end columns. Add `var` columns chrom/start/end, or rename the peaks."
            )
    known = regions["chrom"].notna() & regions["start"].notna() & regions["end"].notna()
    chrom = np.full(len(regions), None, dtype=object)
    chrom[known.to_numpy()] = normalise_chrom(regions.loc[known, "chrom"])
    return pd.DataFrame(
        {
            "chrom": chrom,
            "start": regions["start"].to_numpy(),
            "end": regions["end"].to_numpy(),
            "chrom_name": regions["chrom"].where(known).to_numpy(),
        }
    )


def _strip_version(ids: pd.Series) -> pd.Series:
    return ids.astype(str).str.strip().str.replace(r"\.\d+$", "", regex=True)


def looks_like_ensembl(names: pd.Index | pd.Series) -> bool:
    """Whether most names are Ensembl gene ids (``ENSG00000123456``, optionally versioned)."""
    names = pd.Series(np.asarray(names, dtype=object)).astype(str)
    return len(names) > 0 and names.str.match(ENSEMBL_ID_PATTERN).mean() > 0.5


def gene_symbols(adata: AnnData) -> pd.Series:
    """Gene symbol of each feature: ``var_names``, or a symbol column when names are Ensembl ids."""
    if looks_like_ensembl(adata.var_names):
        column = _find_column(adata.var, SYMBOL_COLUMNS)
        if column is not None:
            return adata.var[column].astype(str).reset_index(drop=True)
    return pd.Series(adata.var_names.astype(str), dtype=object)


def gene_ids(adata: AnnData) -> pd.Series | None:
    """Ensembl-style gene id of each feature (version stripped), or None when there are none."""
    if looks_like_ensembl(adata.var_names):
        return _strip_version(pd.Series(adata.var_names, dtype=object))
    column = _find_column(adata.var, GENE_ID_COLUMNS)
    if column is not None and looks_like_ensembl(adata.var[column]):
        return _strip_version(adata.var[column].reset_index(drop=True))
    return None


@lru_cache(maxsize=1)
def bundled_gene_table() -> pd.DataFrame:
    """The shipped Ensembl 93 GRCh38 gene table (name, gene_id, chrom, start, end, strand)."""
    source = resources.files("mosaicvi.data") / "annotations" / BUNDLED_GENES
    with resources.as_file(source) as path:
        table = pd.read_csv(
            path,
            sep="\t",
            header=None,
            names=["chrom", "start", "end", "name", "score", "strand", "gene_id", "gene_type"],
            dtype={"chrom": str, "name": str, "strand": str, "gene_id": str, "gene_type": str},
        )
    return table


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
    regions = _regions_from_columns(frame, "`gene_coordinates`")
    if regions is None:
        raise ValueError(
            "`gene_coordinates` DataFrame needs columns chrom, start and end (and optionally "
            f"strand, and gene_name / gene_id); it has {list(frame.columns)}."
        )
    name = _find_column(frame, ("gene_name", "name", *SYMBOL_COLUMNS))
    table = regions.assign(
        name=(frame[name] if name is not None else frame.index).astype(str).to_numpy()
    )
    gid = _find_column(frame, GENE_ID_COLUMNS)
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


def gene_regions(
    adata: AnnData,
    gene_coordinates: str | os.PathLike | pd.DataFrame,
    where: str,
) -> GeneRegions:
    """Coordinates of the genes of an RNA modality (see :func:`guidance_graph`).

    Raises
    ------
    ValueError
        If no gene gets coordinates.
    """
    regions, source = None, None
    if isinstance(gene_coordinates, str) and gene_coordinates.lower() == "auto":
        regions = _regions_from_columns(adata.var, where)
        if regions is not None:
            source = f"{where}.var chrom/start/end"
        elif "interval" in adata.var.columns:
            regions = parse_regions(adata.var["interval"])
            regions["strand"] = "."
            source = f"{where}.var['interval']"
        if regions is not None:
            regions["feature"] = np.arange(adata.n_vars)
    if regions is None:
        if isinstance(gene_coordinates, pd.DataFrame):
            table, source = _table_from_frame(gene_coordinates), "the `gene_coordinates` DataFrame"
        elif isinstance(gene_coordinates, str) and gene_coordinates.lower() in BUNDLED_NAMES:
            table = bundled_gene_table()
            source = "the bundled human GRCh38 gene table (Ensembl 93)"
        elif isinstance(gene_coordinates, str | os.PathLike):
            if not os.path.exists(gene_coordinates):
                raise ValueError(
                    f"`gene_coordinates={os.fspath(gene_coordinates)!r}` is neither 'auto', "
                    "'GRCh38' nor an existing BED file."
                )
            table, source = read_bed(gene_coordinates), f"{os.fspath(gene_coordinates)!r}"
        else:
            raise TypeError(
                "`gene_coordinates` must be 'auto', 'GRCh38', a path to a BED file or a DataFrame "
                f"with chrom/start/end columns, not {type(gene_coordinates).__name__}."
            )
        pairs = match_genes(adata, table)
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
            f"{symbols[:3].tolist()}). Pass `gene_coordinates=` a BED file or a DataFrame with "
            "chrom/start/end for the genome and gene names of this data (the bundled table is "
            "human GRCh38 only), or `gene_coordinates=None` to skip gene-peak links."
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


def promoter_regions(genes: pd.DataFrame, promoter: int) -> tuple[np.ndarray, np.ndarray]:
    """Gene bodies extended by ``promoter`` bp upstream of the TSS (both sides if strand unknown)."""
    start = genes["start"].to_numpy(dtype=np.int64)
    end = genes["end"].to_numpy(dtype=np.int64)
    strand = genes["strand"].to_numpy()
    start = start - np.where(strand != "-", promoter, 0)
    end = end + np.where(strand != "+", promoter, 0)
    return start, end


def interval_join(
    query_chrom: np.ndarray,
    query_start: np.ndarray,
    query_end: np.ndarray,
    target_chrom: np.ndarray,
    target_start: np.ndarray,
    target_end: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (query i, target j) on the same chromosome whose half-open intervals overlap.

    Vectorised: targets are sorted by (chromosome, start) once; every query takes the block of
    targets starting in ``[query_start - longest target, query_end)`` with two ``searchsorted``
    calls, and the block is filtered on ``target_end > query_start``.
    """
    empty = np.array([], dtype=np.int64)
    if len(query_chrom) == 0 or len(target_chrom) == 0:
        return empty, empty
    codes, uniques = pd.factorize(np.concatenate([target_chrom, query_chrom]))
    target_code = codes[: len(target_chrom)].astype(np.int64)
    query_code = codes[len(target_chrom) :].astype(np.int64)
    target_start = np.asarray(target_start, dtype=np.int64)
    target_end = np.asarray(target_end, dtype=np.int64)
    query_start = np.asarray(query_start, dtype=np.int64)
    query_end = np.asarray(query_end, dtype=np.int64)
    shift = np.int64(1) << np.int64(40)  # positions are far below 2**40
    order = np.lexsort((target_start, target_code))
    keys = target_code[order] * shift + np.maximum(target_start[order], 0)
    longest = int((target_end - target_start).max())
    low = np.searchsorted(keys, query_code * shift + np.maximum(query_start - longest, 0), "left")
    high = np.searchsorted(keys, query_code * shift + np.maximum(query_end, 0), "left")
    counts = np.maximum(high - low, 0)
    query = np.repeat(np.arange(len(query_code)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    target = order[np.repeat(low, counts) + offsets]
    keep = (target_end[target] > query_start[query]) & (target_start[target] < query_end[query])
    return query[keep], target[keep]


def link_genes_to_peaks(
    genes: pd.DataFrame, peaks: pd.DataFrame, promoter: int, extend: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gene-peak links: (gene feature, peak feature, weight), one row per linked pair.

    A peak overlapping the gene body extended by ``promoter`` bp upstream of the TSS gets weight
    1; with ``extend > 0`` a peak ``d`` bp away from that region (``0 < d <= extend``) gets
    ``(d / 1000 + 1) ** -0.75``. A gene with several loci keeps the largest weight per peak.
    """
    region_start, region_end = promoter_regions(genes, promoter)
    placed = np.flatnonzero(peaks["chrom"].notna().to_numpy())
    peak_start = peaks["start"].to_numpy()[placed].astype(np.int64)
    peak_end = peaks["end"].to_numpy()[placed].astype(np.int64)
    row, hit = interval_join(
        genes["chrom"].to_numpy(),
        region_start - extend,
        region_end + extend,
        peaks["chrom"].to_numpy()[placed],
        peak_start,
        peak_end,
    )
    distance = np.maximum.reduce(
        [
            np.zeros(len(row), dtype=np.int64),
            peak_start[hit] - region_end[row],
            region_start[row] - peak_end[hit],
        ]
    )
    weight = (distance / DECAY_SCALE + 1.0) ** -DECAY_POWER
    gene = genes["feature"].to_numpy()[row]
    return gene, placed[hit], weight
