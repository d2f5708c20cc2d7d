"""Genomic intervals: chromosome names, peak regions, interval joins and gene-peak links.

Intervals are half-open, ``[start, end)`` with 0-based starts as in BED; a peak and a region
overlap when ``peak.start < region.end`` and ``peak.end > region.start``. Chromosome names are
compared after dropping a ``chr`` prefix and upper-casing, with ``M`` and ``MT`` both meaning the
mitochondrion, so ``chr1``/``1`` and ``chrM``/``chrMT`` match.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anndata import AnnData

#: Accepted spellings of the coordinate columns of ``var`` or of a gene table.
CHROM_COLUMNS = ("chrom", "chr", "chromosome", "seqnames", "seqname")
START_COLUMNS = ("start", "chromStart", "chrom_start")
END_COLUMNS = ("end", "chromEnd", "chrom_end")
STRAND_COLUMNS = ("strand",)
#: Names such as ``chr1-100-200``, ``chr1:100-200`` or ``chr1_100_200`` (``,`` thousands allowed).
REGION_PATTERN = re.compile(r"^\s*(?P<chrom>.+)[:_-](?P<start>[\d,]+)[_-](?P<end>[\d,]+)\s*$")
#: Scale (bp) and exponent of the distance decay of links beyond the promoter window (as GLUE).
DECAY_SCALE = 1000.0
DECAY_POWER = 0.75


def normalise_chrom(values: pd.Series | np.ndarray | list[str]) -> np.ndarray:
    """Comparable chromosome names: ``chr`` prefix dropped, upper case, ``M`` -> ``MT``."""
    names = pd.Series(values, dtype=object).astype(str).str.strip()
    names = names.str.replace(r"^chr(?!omosome)", "", regex=True, flags=re.IGNORECASE).str.upper()
    return names.replace({"M": "MT"}).to_numpy(dtype=object)


def find_column(frame: pd.DataFrame, candidates: tuple[str, ...]) -> str | None:
    """The first column of ``frame`` named as one of ``candidates`` (case-insensitive), or None."""
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


def regions_from_columns(frame: pd.DataFrame, where: str) -> pd.DataFrame | None:
    """chrom/start/end(/strand) columns of ``frame`` as a DataFrame, or None when absent."""
    chrom, start, end = (
        find_column(frame, c) for c in (CHROM_COLUMNS, START_COLUMNS, END_COLUMNS)
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
    strand = find_column(frame, STRAND_COLUMNS)
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
    regions = regions_from_columns(adata.var, where)
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
