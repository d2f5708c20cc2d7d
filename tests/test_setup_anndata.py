"""``MosaicVI.setup_anndata``: one modality, or several concatenated along var (10x style)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mosaicvi import MosaicVI

TENX_TYPES = {"rna": "Gene Expression", "atac": "Peaks", "adt": "Antibody Capture"}


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def small_model(adata, **kwargs) -> MosaicVI:
    return MosaicVI(adata, n_hidden=32, n_hidden_decoder=32, n_latent=8, **kwargs)


@pytest.fixture
def rna_adata(synthetic_mosaic) -> ad.AnnData:
    return synthetic_mosaic.mod["rna"].copy()


@pytest.fixture
def tenx_adata(synthetic_mosaic) -> ad.AnnData:
    """Paired b3 cells, RNA + ATAC + ADT concatenated along var with shuffled feature order."""
    cells = [f"b3_cell{i}" for i in range(100)]
    parts = [synthetic_mosaic.mod[m][cells] for m in ["rna", "atac", "adt"]]
    x = sp.hstack([p.X for p in parts]).tocsr()
    var = pd.DataFrame(
        {
            "feature_types": np.concatenate(
                [[TENX_TYPES[m]] * p.n_vars for m, p in zip(TENX_TYPES, parts, strict=True)]
            )
        },
        index=np.concatenate([p.var_names.to_numpy() for p in parts]),
    )
    obs = parts[0].obs.copy()
    obs["batch"] = np.where(np.arange(len(cells)) < 50, "lane1", "lane2")
    adata = ad.AnnData(X=x, obs=obs, var=var)
    order = np.random.default_rng(0).permutation(adata.n_vars)
    return adata[:, order].copy()


def test_unimodal_anndata(rna_adata, train_quick):
    adata = rna_adata
    MosaicVI.setup_anndata(adata, batch_key="batch")
    presence = adata.obsm["_mosaicvi_presence"]
    assert list(presence.columns) == ["rna"]
    assert presence.to_numpy().all()
    np.testing.assert_array_equal(dense(adata.obsm["_mosaicvi_x_rna"]), dense(adata.X))
    model = small_model(adata)
    assert model.modalities == {"rna": "rna"}
    assert model.summary_stats.n_batch == 3  # b1, b3, b4
    train_quick(model, max_epochs=1)
    latent = model.get_latent_representation()
    assert latent.shape == (adata.n_obs, 8)
    assert np.isfinite(latent).all()
    weights = model.get_attention_weights()
    np.testing.assert_allclose(weights["rna"].to_numpy(), 1.0)


def test_unimodal_kind_argument(synthetic_mosaic):
    adata = synthetic_mosaic.mod["adt"].copy()
    MosaicVI.setup_anndata(adata, modality="adt", batch_key="batch")
    model = small_model(adata)
    assert model.modalities == {"adt": "adt"}
    assert model.module.likelihoods["adt"].name == "nb"


def test_unimodal_unknown_kind_raises(rna_adata):
    with pytest.raises(ValueError, match="modality"):
        MosaicVI.setup_anndata(rna_adata, modality="dna")


def test_anndata_layer(rna_adata):
    adata = rna_adata
    counts = dense(adata.X)
    adata.layers["counts"] = adata.X.copy()
    adata.X = sp.csr_matrix(np.log1p(counts).astype(np.float32))
    with pytest.raises(ValueError, match="layers"):
        MosaicVI.setup_anndata(adata, batch_key="batch")
    assert not any(k.startswith("_mosaicvi") for k in adata.obsm)
    MosaicVI.setup_anndata(adata, layer="counts", batch_key="batch")
    np.testing.assert_array_equal(dense(adata.obsm["_mosaicvi_x_rna"]), counts)


def test_anndata_missing_batch_key_raises(rna_adata):
    obsm_before = sorted(rna_adata.obsm.keys())
    obs_before = rna_adata.obs.copy()
    with pytest.raises(ValueError, match="nope"):
        MosaicVI.setup_anndata(rna_adata, batch_key="nope")
    assert sorted(rna_adata.obsm.keys()) == obsm_before
    pd.testing.assert_frame_equal(rna_adata.obs, obs_before)


def test_anndata_duplicate_var_names_raise(rna_adata):
    rna_adata.var_names = ["g"] * rna_adata.n_vars
    with pytest.raises(ValueError, match="duplicates"):
        MosaicVI.setup_anndata(rna_adata)


def test_tenx_feature_types_split(tenx_adata, train_quick):
    adata = tenx_adata
    x_before = dense(adata.X).copy()
    MosaicVI.setup_anndata(adata, batch_key="batch")
    model = small_model(adata)
    assert model.modalities == {"rna": "rna", "atac": "atac", "adt": "adt"}
    assert {m: lik.name for m, lik in model.module.likelihoods.items()} == {
        "rna": "nb",
        "atac": "bernoulli",
        "adt": "nb",
    }
    types = adata.var["feature_types"].to_numpy()
    x = dense(adata.X)
    np.testing.assert_array_equal(x, x_before)  # X untouched
    expected_features = {"rna": "gene", "atac": "peak", "adt": "prot"}
    for modality, feature_type in TENX_TYPES.items():
        columns = types == feature_type
        assert adata.var_names[columns].str.startswith(expected_features[modality]).all()
        aligned = dense(adata.obsm[f"_mosaicvi_x_{modality}"])
        assert aligned.shape == (adata.n_obs, columns.sum())
        np.testing.assert_array_equal(aligned, x[:, columns])
    assert adata.obsm["_mosaicvi_presence"].to_numpy().all()

    train_quick(model, max_epochs=1)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
    latent = model.get_latent_representation()
    assert latent.shape == (adata.n_obs, 8)
    assert np.isfinite(latent).all()
    weights = model.get_attention_weights()
    np.testing.assert_allclose(weights.sum(1).to_numpy(), 1.0, rtol=1e-5)
    assert (weights.to_numpy() > 0).all()


def test_tenx_other_feature_type_becomes_counts(tenx_adata):
    adata = tenx_adata
    types = adata.var["feature_types"].astype(str).to_numpy().copy()
    types[types == "Antibody Capture"] = "CRISPR Guide Capture"
    adata.var["feature_types"] = types
    MosaicVI.setup_anndata(adata)
    model = small_model(adata)
    assert model.modalities == {"rna": "rna", "atac": "atac", "crispr_guide_capture": "counts"}


def test_feature_type_key_none_gives_one_modality(tenx_adata):
    MosaicVI.setup_anndata(tenx_adata, feature_type_key=None)
    model = small_model(tenx_adata)
    assert model.modalities == {"rna": "rna"}
    assert tenx_adata.obsm["_mosaicvi_x_rna"].shape == tenx_adata.shape
