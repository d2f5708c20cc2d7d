"""get_imputed: a modality for every cell as an AnnData that scanpy takes as is."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

import mosaicvi
from mosaicvi import MosaicVI

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def trained(_snareseq_small_base):
    """A tiny model on the SNARE-seq mosaic, with a UMAP of its latent space."""
    mdata = _snareseq_small_base[0].copy()
    MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type")
    model = MosaicVI(mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16)
    model.train(
        max_epochs=1, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False
    )
    mdata.obsm["X_mosaicvi"] = model.get_latent_representation()
    sc.pp.neighbors(mdata, use_rep="X_mosaicvi", random_state=0)
    sc.tl.umap(mdata, random_state=0)
    return mdata, model


def test_setup_writes_the_modality_set_of_each_cell(snareseq_small):
    mdata = snareseq_small()
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    sets = mdata.obs["modality_set"]
    assert list(sets.cat.categories) == ["rna+atac", "rna", "atac"]
    in_rna = mdata.obs_names.isin(mdata["rna"].obs_names)
    in_atac = mdata.obs_names.isin(mdata["atac"].obs_names)
    expected = np.where(in_rna & in_atac, "rna+atac", np.where(in_rna, "rna", "atac"))
    np.testing.assert_array_equal(sets.astype(str).to_numpy(), expected)


def test_imputed_atac_is_sparse_over_every_cell_in_obs_order(trained):
    mdata, model = trained
    imputed = model.get_imputed("atac")
    assert sp.issparse(imputed.X) and imputed.X.dtype == np.float32
    assert imputed.obs_names.equals(mdata.obs_names)
    pd.testing.assert_frame_equal(imputed.var, mdata["atac"].var)
    assert (
        imputed.obs["measured"].tolist() == mdata.obs_names.isin(mdata["atac"].obs_names).tolist()
    )
    np.testing.assert_array_equal(imputed.obsm["X_umap"], mdata.obsm["X_umap"])
    assert not any(k.startswith("_mosaicvi") for k in imputed.obsm)
    full = model.get_normalized_expression(modality="atac", use_z_mean=True, return_numpy=True)
    threshold = imputed.uns["mosaicvi_imputed"]["threshold"]
    typical = np.median(np.diff(mdata.obsm["_mosaicvi_x_atac"].indptr)[imputed.obs["measured"]])
    assert threshold == pytest.approx(5 * typical / mdata["atac"].n_vars, rel=1e-3)
    expected = np.where(full >= threshold, full, 0.0)
    np.testing.assert_allclose(imputed.X.toarray(), expected, rtol=1e-5, atol=1e-7)
    assert 0 < imputed.X.nnz < full.size
    dense = model.get_imputed("atac", dense=True, feature_list=mdata["atac"].var_names[:7])
    assert isinstance(dense.X, np.ndarray) and dense.shape == (mdata.n_obs, 7)
    np.testing.assert_allclose(dense.X, full[:, :7], rtol=1e-5)


def test_imputed_rna_is_dense_and_a_lower_threshold_keeps_more(trained):
    _, model = trained
    rna = model.get_imputed("rna")
    assert isinstance(rna.X, np.ndarray)
    np.testing.assert_allclose(rna.X.sum(1), 1.0, rtol=1e-4)  # proportions (library 1)
    assert model.get_imputed("atac", threshold=0.0).X.nnz > model.get_imputed("atac").X.nnz
    with pytest.raises(ValueError, match="`threshold` must be a number >= 0"):
        model.get_imputed("atac", threshold=-1.0)


def test_scanpy_plots_and_ranks_imputed_atac_as_is(trained):
    _, model = trained
    imputed = model.get_imputed("atac")
    peak = imputed.var_names[int(np.argmax(imputed.X.getnnz(axis=0)))]
    sc.pl.umap(imputed, color=[peak, "measured"], show=False)
    sc.pl.dotplot(imputed, [peak], groupby="cell_type", show=False)
    sc.tl.rank_genes_groups(imputed, "cell_type", method="wilcoxon")
    ranked = sc.get.rank_genes_groups_df(imputed, group=None)
    assert set(ranked["group"]) == set(imputed.obs["cell_type"].astype(str))


def test_pl_imputed_features_draws_measured_and_imputed_side_by_side(trained):
    _, model = trained
    imputed = model.get_imputed("atac")
    peaks = list(imputed.var_names[:2])
    fig = mosaicvi.pl.imputed_features(imputed, peaks, show=False)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [f"{p}, {kind}" for p in peaks for kind in ("measured", "imputed")]
    with pytest.raises(ValueError, match=r"\['nope'\] are not features of the imputed data"):
        mosaicvi.pl.imputed_features(imputed, ["nope"], show=False)
    with pytest.raises(ValueError, match=r"obsm\['X_tsne'\].*sc.tl.tsne"):
        mosaicvi.pl.imputed_features(imputed, peaks, basis="tsne", show=False)
