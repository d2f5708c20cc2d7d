"""Setup does not copy the counts when it need not, and never rewrites the user's matrices."""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import scipy.sparse as sp

from mosaicvi import MosaicVI
from mosaicvi._constants import modality_obsm_key


def _float32_csr(adata: ad.AnnData) -> None:
    adata.X = sp.csr_matrix(adata.X, dtype=np.float32)
    adata.X.sort_indices()


def test_aligned_counts_share_the_modality_arrays(synthetic_mosaic):
    mdata = synthetic_mosaic
    for adata in mdata.mod.values():
        _float32_csr(adata)
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    shared = {}
    for name, adata in mdata.mod.items():
        aligned = mdata.obsm[modality_obsm_key(name)]
        rows = mdata.obs_names.get_indexer(adata.obs_names)
        in_global_order = bool(np.all(np.diff(rows) > 0))
        shared[name] = np.shares_memory(aligned.data, adata.X.data)
        assert shared[name] == in_global_order, name
        np.testing.assert_array_equal(aligned[rows].toarray(), adata.X.toarray())
        others = np.setdiff1d(np.arange(mdata.n_obs), rows)
        assert aligned[others].nnz == 0
    assert any(shared.values()) and not all(shared.values())


def test_explicit_zeros_are_pruned_on_a_copy(synthetic_mosaic):
    mdata = synthetic_mosaic
    rna = mdata.mod["rna"]
    _float32_csr(rna)
    rna.X.data[:5] = 0.0  # explicit zeros, as some pipelines leave them
    arrays = [a.copy() for a in (rna.X.data, rna.X.indices, rna.X.indptr)]
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    for before, after in zip(arrays, (rna.X.data, rna.X.indices, rna.X.indptr), strict=True):
        np.testing.assert_array_equal(before, after)
    aligned = mdata.obsm[modality_obsm_key("rna")]
    assert (aligned.data != 0).all()
    rows = mdata.obs_names.get_indexer(rna.obs_names)
    np.testing.assert_array_equal(aligned[rows].toarray(), rna.X.toarray())


def test_unsorted_modality_order_is_copied_correctly():
    x = sp.csr_matrix(np.arange(12, dtype=np.float32).reshape(4, 3) + 1)
    rna = ad.AnnData(x, obs={"batch": ["a", "a", "b", "b"]})
    rna.obs_names = ["c3", "c1", "c2", "c0"]
    mdata = mudata.MuData({"rna": rna})
    mdata = mdata[["c0", "c1", "c2", "c3"]].copy()
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    aligned = mdata.obsm[modality_obsm_key("rna")].toarray()
    for cell in mdata.obs_names:
        np.testing.assert_array_equal(
            aligned[mdata.obs_names.get_loc(cell)], mdata["rna"][cell].X.toarray()[0]
        )
