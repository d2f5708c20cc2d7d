"""Mosaic data of any size, resampled and perturbed from the real SNARE-seq cells (sparse throughout).

Each new cell is a random mix of two real cells of the same sample and cell type: its counts are
the binomially thinned counts of both cells (thinning probabilities ``w * s`` and ``(1 - w) * s``,
``w`` uniform, ``s`` a per-cell, per-modality depth factor), so the expected profile is a convex
mixture of two real profiles at a jittered depth, and every count stays an integer. RNA and ATAC
of one new cell come from the same pair of real cells (they stay paired). The protein panel is
simulated (SNARE-seq measured none): see :func:`protein_profiles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import scipy.sparse as sp

from mosaicvi._compat import mudata_no_pull_on_update
from mosaicvi.data._datasets import snareseq

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

MODALITIES = ("rna", "atac", "adt")
#: Which samples measure which modality, by position in sorted sample order (12 SNARE-seq samples):
#: 2 trimodal, 2 RNA+ATAC, 2 RNA+ADT, 2 RNA-only, 3 ATAC-only and 1 ADT-only sample.
DEFAULT_LAYOUT = {"rna": range(0, 8), "atac": [0, 1, 2, 3, 8, 9, 10], "adt": [0, 1, 4, 5, 11]}
#: Without ADT: the benchmarks' SNARE-seq mosaic (4 paired, 4 RNA-only, 4 ATAC-only samples).
DEFAULT_LAYOUT_RNA_ATAC = {"rna": range(0, 8), "atac": [0, 1, 2, 3, 8, 9, 10, 11]}


@dataclass
class _Recipe:
    """The source pair, mixing weight and sample of every new cell."""

    first: np.ndarray
    second: np.ndarray
    weight: np.ndarray
    batch: np.ndarray


def synthetic_mosaic(
    n_cells: int,
    modalities: Sequence[str] = MODALITIES,
    layout: Mapping[str, Sequence[str]] | None = None,
    n_proteins: int = 50,
    seed: int = 0,
    source: mudata.MuData | None = None,
    chunk_size: int = 20_000,
) -> mudata.MuData:
    """A mosaic MuData of ``n_cells`` cells resampled and perturbed from real SNARE-seq cells.

    For speed and memory benchmarks at 10^4 to 10^6 cells without downloads. Each new cell mixes
    two real cells of the same sample and cell type by binomial thinning (counts stay integers,
    the expected profile is a convex mix of the two at a depth jittered by 0.7-1.0x); it keeps
    their sample (``obs["batch"]``, so real batch effects carry over), ``cell_type`` and
    ``cell_type_coarse``. ``"adt"`` is a *simulated* protein panel: ``n_proteins`` genes with the
    most cell-type-specific RNA profiles, named ``<gene>_prot``, with negative binomial counts
    around a per-type profile learned from the RNA plus a constant background (see
    :func:`protein_profiles`). Matrices are CSR float32, built chunk by chunk: peak memory is
    about the output plus one chunk.

    Parameters
    ----------
    n_cells
        Number of cells in the result (before cells are split between modalities: every cell
        measures at least one modality).
    modalities
        Modalities to generate, a subset of ``("rna", "atac", "adt")``.
    layout
        Modality -> samples (values of ``obs["batch"]``, ``"09A"`` ... ``"09L"``) that measured it.
        Default: 2 trimodal samples, 2 RNA+ATAC, 2 RNA+ADT, 2 RNA-only, 3 ATAC-only and 1 ADT-only
        (``DEFAULT_LAYOUT``); with only RNA and ATAC, 4 paired, 4 RNA-only and 4 ATAC-only. Every
        sample must measure at least one of ``modalities``.
    n_proteins
        Size of the simulated protein panel.
    seed
        Random seed; the same arguments give the same data.
    source
        Paired RNA+ATAC MuData to resample, with ``obs`` columns ``batch``, ``cell_type`` (and
        optionally ``cell_type_coarse``); default :func:`mosaicvi.data.snareseq`.
    chunk_size
        Cells generated at a time (bounds the temporary memory).

    Returns
    -------
    An unpaired MuData as ``mudata.MuData({...})`` builds it from per-modality AnnData objects
    (each holds the cells that measured it), with ``obs`` columns ``batch``, ``cell_type`` and
    ``cell_type_coarse``. Cells are ordered so that every modality's cells appear in the global
    order.

    Examples
    --------
    >>> import mosaicvi
    >>> mdata = mosaicvi.data.synthetic_mosaic(20_000, seed=0)
    >>> sorted(mdata.mod), mdata.n_obs
    (['adt', 'atac', 'rna'], 20000)
    >>> rna_atac = mosaicvi.data.synthetic_mosaic(20_000, modalities=["rna", "atac"])
    """
    if n_cells < 1:
        raise ValueError(f"`n_cells` must be a positive number of cells, got {n_cells}.")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ValueError(
            f"`modalities` must be a non-empty subset of {MODALITIES}; got {modalities}."
        )
    paired = snareseq() if source is None else source
    batches = np.asarray(sorted(paired.obs["batch"].astype(str).unique()))
    keep = _resolve_layout(layout, list(modalities), batches)
    rng = np.random.default_rng(seed)
    recipe = _recipe(paired.obs, batches, keep, n_cells, rng)
    obs = _obs(paired.obs, recipe, batches)
    mods = {}
    for name in modalities:
        cells = np.flatnonzero(np.isin(recipe.batch, np.flatnonzero(np.isin(batches, keep[name]))))
        if name == "adt":
            profiles, names = protein_profiles(paired, n_proteins)
            x = _simulate_proteins(
                profiles, paired.obs["cell_type"], recipe, cells, rng, chunk_size
            )
            var = pd.DataFrame(index=pd.Index(names, name=None))
        else:
            x = _mix_counts(sp.csr_matrix(paired[name].X), recipe, cells, rng, chunk_size)
            var = paired[name].var.copy()
        mods[name] = ad.AnnData(x, obs=obs.iloc[cells].copy(), var=var)
    with mudata_no_pull_on_update():
        mdata = mudata.MuData(mods)
    for column in obs.columns:
        mdata.obs[column] = obs.loc[mdata.obs_names, column].to_numpy()
    return mdata


def _resolve_layout(
    layout: Mapping[str, Sequence[str]] | None, modalities: list[str], batches: np.ndarray
) -> dict[str, list[str]]:
    """Modality -> samples that measured it, checked against the source samples."""
    if layout is None:
        default = DEFAULT_LAYOUT if "adt" in modalities else DEFAULT_LAYOUT_RNA_ATAC
        if len(batches) != 12:
            return {m: list(batches) for m in modalities}
        return {m: list(batches[list(default[m])]) for m in modalities}
    extra = [m for m in layout if m not in modalities]
    if extra:
        raise ValueError(f"`layout` names modalities {extra} not in `modalities` ({modalities}).")
    keep = {m: [str(b) for b in layout.get(m, batches)] for m in modalities}
    for m, chosen in keep.items():
        missing = sorted(set(chosen) - set(batches))
        if missing:
            raise ValueError(f"`layout[{m!r}]` names samples {missing} not in obs['batch'].")
    return keep


def _recipe(
    obs: pd.DataFrame, batches: np.ndarray, keep: dict[str, list[str]], n: int, rng
) -> _Recipe:
    """Draw each new cell's pair of source cells (same sample and type) and mixing weight."""
    measured = set().union(*map(set, keep.values()))
    batch_code = pd.Categorical(obs["batch"].astype(str), categories=batches).codes
    usable = np.flatnonzero(np.isin(batches[batch_code], list(measured)))
    if not len(usable):
        raise ValueError("`layout` leaves no sample with a measured modality.")
    group = batch_code.astype(np.int64) * 100_000 + pd.factorize(obs["cell_type"])[0]
    first = rng.choice(usable, size=n)
    order = np.argsort(group, kind="stable")
    sorted_groups = group[order]
    start = np.searchsorted(sorted_groups, group[first], side="left")
    size = np.searchsorted(sorted_groups, group[first], side="right") - start
    second = order[start + (rng.random(n) * size).astype(np.int64)]
    # Sort new cells by (first modality measured, sample): each modality's cells then come in
    # the global (mudata union) order.
    first_modality = {b: min(i for i, m in enumerate(keep) if b in keep[m]) for b in measured}
    code = batch_code[first]
    key = np.array([first_modality.get(b, 0) for b in batches])[code] * len(batches) + code
    new_order = np.argsort(key, kind="stable")
    return _Recipe(
        first=first[new_order],
        second=second[new_order],
        weight=rng.random(n)[new_order],
        batch=code[new_order],
    )


def _obs(source_obs: pd.DataFrame, recipe: _Recipe, batches: np.ndarray) -> pd.DataFrame:
    """Per-cell sample and cell types of the new cells."""
    n = len(recipe.first)
    obs = pd.DataFrame(index=pd.Index([f"cell{i}" for i in range(n)]))
    obs["batch"] = pd.Categorical.from_codes(recipe.batch, categories=batches)
    for column in ("cell_type", "cell_type_coarse"):
        if column in source_obs:
            values = pd.Categorical(source_obs[column].astype(str))
            obs[column] = pd.Categorical.from_codes(
                values.codes[recipe.first], categories=values.categories
            )
    return obs


def _mix_counts(
    x: sp.csr_matrix, recipe: _Recipe, cells: np.ndarray, rng, chunk_size: int
) -> sp.csr_matrix:
    """Counts of ``cells``: thinned counts of each cell's two source cells, summed."""
    per_row = np.diff(x.indptr)
    bound = int(per_row[recipe.first[cells]].sum() + per_row[recipe.second[cells]].sum())
    writer = _CsrWriter(len(cells), x.shape[1], bound)
    for start in range(0, len(cells), chunk_size):
        chunk = cells[start : start + chunk_size]
        depth = rng.uniform(0.7, 1.0, size=len(chunk))
        weight = recipe.weight[chunk]
        mixed = _thin(x[recipe.first[chunk]], weight * depth, rng) + _thin(
            x[recipe.second[chunk]], (1.0 - weight) * depth, rng
        )
        mixed.eliminate_zeros()
        writer.append(mixed)
    return writer.result()


def _thin(x: sp.csr_matrix, keep: np.ndarray, rng) -> sp.csr_matrix:
    """Binomial thinning: each count of row ``i`` kept with probability ``keep[i]``."""
    x = sp.csr_matrix(x)
    rows = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    values = rng.binomial(np.rint(x.data).astype(np.int64), keep[rows]).astype(np.float32)
    return sp.csr_matrix((values, x.indices, x.indptr), shape=x.shape)


class _CsrWriter:
    """Fill one CSR matrix chunk by chunk, into arrays sized by an upper bound of its non-zeros.

    Only the pages written become resident, so memory stays at the result plus one chunk (a list
    of chunks stacked at the end would hold about twice the result).
    """

    def __init__(self, n_rows: int, n_cols: int, nnz_bound: int):
        index_dtype = np.int32 if nnz_bound < np.iinfo(np.int32).max else np.int64
        self.shape = (n_rows, n_cols)
        self.data = np.empty(nnz_bound, dtype=np.float32)
        self.indices = np.empty(nnz_bound, dtype=index_dtype)
        self.indptr = np.zeros(n_rows + 1, dtype=index_dtype)
        self.row = self.nnz = 0

    def append(self, piece: sp.csr_matrix) -> None:
        """Write the rows of ``piece`` after those written so far."""
        piece.sort_indices()
        end = self.nnz + piece.nnz
        self.data[self.nnz : end] = piece.data
        self.indices[self.nnz : end] = piece.indices
        self.indptr[self.row + 1 : self.row + piece.shape[0] + 1] = piece.indptr[1:] + self.nnz
        self.row, self.nnz = self.row + piece.shape[0], end

    def result(self) -> sp.csr_matrix:
        """The matrix (its arrays are views of the written part)."""
        return sp.csr_matrix(
            (self.data[: self.nnz], self.indices[: self.nnz], self.indptr),
            shape=self.shape,
            copy=False,
        )


def protein_profiles(paired: mudata.MuData, n_proteins: int) -> tuple[pd.DataFrame, list[str]]:
    """Per-cell-type mean protein levels of a simulated panel, learned from the RNA.

    The panel is the ``n_proteins`` genes whose mean log-normalised expression varies most
    between cell types (markers, as antibody panels are chosen). A protein's level in a type is
    its gene's mean counts per 10,000 in that type, scaled so the most expressing type has 1.

    Returns
    -------
    Cell types x proteins (levels in [0, 1]) and the protein names (``<gene>_prot``).
    """
    rna = paired["rna"]
    x = sp.csr_matrix(rna.X, dtype=np.float64)
    depth = np.asarray(x.sum(1)).ravel()
    normalised = sp.diags(1e4 / np.maximum(depth, 1.0)) @ x
    types = pd.Categorical(rna.obs["cell_type"].astype(str))
    membership = sp.csr_matrix(
        (np.ones(rna.n_obs), (types.codes, np.arange(rna.n_obs))),
        shape=(len(types.categories), rna.n_obs),
    )
    sizes = np.asarray(membership.sum(1)).ravel()[:, None]
    means = np.asarray((membership @ normalised).todense()) / sizes
    spread = np.log1p(means).var(axis=0)
    chosen = np.sort(np.argsort(spread)[::-1][: min(n_proteins, rna.n_vars)])
    levels = means[:, chosen] / np.maximum(means[:, chosen].max(0), 1e-12)
    names = [f"{g}_prot" for g in rna.var_names[chosen]]
    return pd.DataFrame(levels, index=types.categories, columns=names), names


def _simulate_proteins(
    profiles: pd.DataFrame,
    source_types: pd.Series,
    recipe: _Recipe,
    cells: np.ndarray,
    rng,
    chunk_size: int,
    depth: float = 60.0,
    background: float = 0.15,
    theta: float = 5.0,
) -> sp.csr_matrix:
    """NB counts ``mean = s * depth * (background + level[type])`` with ``s`` lognormal(0, 0.4)."""
    type_row = profiles.index.get_indexer(source_types.astype(str).to_numpy())
    levels = profiles.to_numpy()
    writer = _CsrWriter(len(cells), levels.shape[1], len(cells) * levels.shape[1])
    for start in range(0, len(cells), chunk_size):
        chunk = cells[start : start + chunk_size]
        scale = rng.lognormal(0.0, 0.4, size=(len(chunk), 1))
        mean = scale * depth * (background + levels[type_row[recipe.first[chunk]]])
        counts = rng.poisson(rng.gamma(theta, mean / theta)).astype(np.float32)
        writer.append(sp.csr_matrix(counts))
    return writer.result()
