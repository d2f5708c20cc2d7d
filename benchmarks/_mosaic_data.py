"""The SNARE-seq mosaic used by the benchmarks, and its zero-padded form for MULTIVI."""

from __future__ import annotations

import mudata
import numpy as np
import scipy.sparse as sp
from anndata import AnnData

import mosaicvi


def snareseq_mosaic() -> tuple[mudata.MuData, dict[str, list[str]]]:
    """SNARE-seq split into 4 paired, 4 RNA-only and 4 ATAC-only batches (sorted sample order)."""
    paired = mosaicvi.data.snareseq()
    batches = sorted(paired.obs["batch"].unique())
    layout = {"rna": batches[:8], "atac": batches[:4] + batches[8:]}
    return mosaicvi.data.mosaic_split(paired, layout), layout


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


def snareseq_diagonal() -> tuple[mudata.MuData, mudata.MuData, dict[str, list[str]]]:
    """SNARE-seq with 6 RNA-only and 6 ATAC-only samples: no cell keeps both modalities.

    Returns ``(diagonal, paired, layout)``: the unpaired MuData to train on, the original paired
    MuData (every cell's hidden modality is still there, for FOSCTTM) and the split used (first six
    samples in sorted order keep RNA, the last six keep ATAC).
    """
    paired = mosaicvi.data.snareseq()
    batches = sorted(paired.obs["batch"].unique())
    layout = {"rna": batches[:6], "atac": batches[6:]}
    return mosaicvi.data.mosaic_split(paired, layout), paired, layout
