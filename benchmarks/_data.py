"""The data sets of the benchmarks: the SNARE-seq mosaic and diagonal splits, and their references.

Every SNARE-seq task takes ``--max-cells`` (a random subset of the 10,309 cells, for smoke
runs); the splits are made on the sorted sample names, so they do not depend on it.
"""

from __future__ import annotations

import mudata
import numpy as np
import scipy.sparse as sp
from anndata import AnnData

import mosaicvi


def snareseq(args) -> mudata.MuData:
    """The paired SNARE-seq data, or ``args.max_cells`` of its cells drawn at random (seed 0)."""
    paired = mosaicvi.data.snareseq()
    if args.max_cells and args.max_cells < paired.n_obs:
        rng = np.random.default_rng(0)
        paired = paired[np.sort(rng.choice(paired.n_obs, args.max_cells, replace=False))].copy()
    return paired


def snareseq_mosaic(args) -> tuple[mudata.MuData, mudata.MuData, dict[str, list[str]]]:
    """SNARE-seq as 4 paired, 4 RNA-only and 4 ATAC-only samples (sorted sample order).

    Returns ``(mosaic, paired, layout)``: the mosaic to train on, the paired data (the hidden
    modality of every single-modality cell is still there) and the split.
    """
    paired = snareseq(args)
    batches = sorted(paired.obs["batch"].unique())
    layout = {"rna": batches[:8], "atac": batches[:4] + batches[8:]}
    return mosaicvi.data.mosaic_split(paired, layout), paired, layout


def snareseq_diagonal(args) -> tuple[mudata.MuData, mudata.MuData, dict[str, list[str]]]:
    """SNARE-seq with 6 RNA-only and 6 ATAC-only samples: no cell keeps both modalities.

    Returns ``(diagonal, paired, layout)`` as :func:`snareseq_mosaic` (first six samples in
    sorted order keep RNA, the last six keep ATAC).
    """
    paired = snareseq(args)
    batches = sorted(paired.obs["batch"].unique())
    layout = {"rna": batches[:6], "atac": batches[6:]}
    return mosaicvi.data.mosaic_split(paired, layout), paired, layout


def sample_groups(mosaic, layout: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Masks of the mosaic's cells from paired, RNA-only and ATAC-only samples."""
    batch = mosaic.obs["batch"].astype(str).to_numpy()
    both = set(layout["rna"]) & set(layout["atac"])
    return {
        "paired": np.isin(batch, sorted(both)),
        "RNA-only": np.isin(batch, sorted(set(layout["rna"]) - both)),
        "ATAC-only": np.isin(batch, sorted(set(layout["atac"]) - both)),
    }


def hidden_truth(mosaic, paired, layout) -> tuple[dict[str, np.ndarray], dict]:
    """The single-modality cells and the profiles the split hid from them.

    Returns ``(cells, truth)``: ``cells["rna_only"]`` / ``cells["atac_only"]`` are positions in
    the mosaic; ``truth["atac"]`` / ``truth["rna"]`` the hidden counts of those cells.
    """
    groups = sample_groups(mosaic, layout)
    cells = {
        "rna_only": np.flatnonzero(groups["RNA-only"]),
        "atac_only": np.flatnonzero(groups["ATAC-only"]),
    }
    names = mosaic.obs_names
    truth = {
        "atac": paired["atac"][names[cells["rna_only"]]].X,
        "rna": paired["rna"][names[cells["atac_only"]]].X,
    }
    return cells, truth


def zero_padded(mosaic: mudata.MuData) -> mudata.MuData:
    """Paired MuData where cells lacking a modality have all-zero rows (what MULTIVI expects)."""
    mods = {}
    for name, adata in mosaic.mod.items():
        rows = mosaic.obs_names.get_indexer(adata.obs_names)
        selector = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, np.arange(len(rows)))),
            shape=(mosaic.n_obs, adata.n_obs),
        )
        x = (selector @ sp.csr_matrix(adata.X)).astype(np.float32).tocsr()
        mods[name] = AnnData(x, obs=mosaic.obs[["batch"]].copy(), var=adata.var[[]].copy())
    padded = mudata.MuData(mods)
    padded.obs["batch"] = mosaic.obs["batch"].to_numpy()
    return padded


def unintegrated_pca(mosaic, n_comps: int = 30, seed: int = 0) -> np.ndarray:
    """PCA of [log-normalised RNA | TF-IDF ATAC], zero rows for missing modalities."""
    import scanpy as sc

    blocks = []
    for name, adata in zero_padded(mosaic).mod.items():
        a = adata.copy()
        if name == "atac":
            a.X.data[:] = 1.0
            idf = a.n_obs / (1.0 + np.asarray((a.X > 0).sum(0)).ravel())
            a.X = a.X.multiply(idf).tocsr()
        sc.pp.normalize_total(a, target_sum=1e4)
        sc.pp.log1p(a)
        blocks.append(a.X)
    joined = AnnData(sp.hstack(blocks).tocsr())
    sc.pp.pca(joined, n_comps=min(n_comps, joined.n_obs - 1), random_state=seed)
    return joined.obsm["X_pca"]
