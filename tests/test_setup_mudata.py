"""``MosaicVI.setup_mudata`` on unpaired (mosaic) and paired MuData."""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from mosaicvi import MosaicVI

PRESENCE = "_mosaicvi_presence"
ZERO_RNA_CELL = "b1_cell0"


def obsm_key(modality: str) -> str:
    return f"_mosaicvi_x_{modality}"


def small_model(mdata, **kwargs) -> MosaicVI:
    return MosaicVI(mdata, n_hidden=16, n_hidden_decoder=16, n_latent=4, **kwargs)


def snapshot(mdata: mudata.MuData) -> dict:
    """What setup may write to: obsm entries (by identity), obs and uns keys."""
    return {
        "obsm_keys": sorted(mdata.obsm.keys()),
        "obsm_ids": {k: id(v) for k, v in mdata.obsm.items()},
        "obs": mdata.obs.copy(),
        "uns_keys": sorted(mdata.uns.keys()),
    }


def assert_unchanged(mdata: mudata.MuData, before: dict) -> None:
    assert sorted(mdata.obsm.keys()) == before["obsm_keys"]
    assert {k: id(v) for k, v in mdata.obsm.items()} == before["obsm_ids"]
    pd.testing.assert_frame_equal(mdata.obs, before["obs"])
    assert sorted(mdata.uns.keys()) == before["uns_keys"]
    assert not any(k.startswith("_mosaicvi") for k in mdata.obsm if k not in before["obsm_keys"])


def dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


# --------------------------------------------------------------------------------------------------
# What setup writes
# --------------------------------------------------------------------------------------------------


def test_presence_is_modality_membership(synthetic_mosaic):
    mdata = synthetic_mosaic
    rna = mdata.mod["rna"]
    assert dense(rna[ZERO_RNA_CELL].X).sum() == 0, (
        "fixture should hold an all-zero measured RNA row"
    )

    MosaicVI.setup_mudata(mdata, batch_key="batch")

    presence = mdata.obsm[PRESENCE]
    assert isinstance(presence, pd.DataFrame)
    assert list(presence.columns) == ["rna", "atac", "adt"]
    assert presence.index.equals(mdata.obs_names)
    for modality in ["rna", "atac", "adt"]:
        expected = mdata.obs_names.isin(mdata.mod[modality].obs_names)
        np.testing.assert_array_equal(presence[modality].to_numpy(dtype=bool), expected)
    # Presence comes from membership, not from non-zero rows.
    assert bool(presence.loc[ZERO_RNA_CELL, "rna"])
    assert not bool(presence.loc[ZERO_RNA_CELL, "adt"])
    # Spot-check the synthetic design.
    assert presence.loc["b2_cell5"].tolist() == [False, False, True]
    assert presence.loc["b3_cell5"].tolist() == [True, True, True]
    assert presence.loc["b4_cell5"].tolist() == [True, True, False]


def test_aligned_counts_match_modalities(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    for modality in ["rna", "atac", "adt"]:
        adata = mdata.mod[modality]
        aligned = mdata.obsm[obsm_key(modality)]
        assert sp.issparse(aligned)
        assert aligned.shape == (mdata.n_obs, adata.n_vars)
        assert aligned.dtype == np.float32
        aligned = dense(aligned)
        rows = mdata.obs_names.get_indexer(adata.obs_names)
        assert (rows >= 0).all()
        np.testing.assert_array_equal(aligned[rows], dense(adata.X))
        others = np.setdiff1d(np.arange(mdata.n_obs), rows)
        assert len(others) > 0
        assert not aligned[others].any()


def test_aligned_counts_follow_shuffled_global_order(synthetic_mosaic):
    """Rows are placed by name even when mdata.obs order differs from the modality order."""
    rng = np.random.default_rng(1)
    mdata = synthetic_mosaic[rng.permutation(synthetic_mosaic.n_obs)].copy()
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    rna = mdata.mod["rna"]
    aligned = dense(mdata.obsm[obsm_key("rna")])
    for cell in ["b3_cell7", "b4_cell42", "b1_cell99"]:
        np.testing.assert_array_equal(
            aligned[mdata.obs_names.get_loc(cell)], dense(rna[cell].X)[0]
        )


def test_modalities_are_not_modified(synthetic_mosaic):
    mdata = synthetic_mosaic
    before = {m: a.copy() for m, a in mdata.mod.items()}
    MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type")
    for modality, old in before.items():
        new = mdata.mod[modality]
        assert new.shape == old.shape
        np.testing.assert_array_equal(dense(new.X), dense(old.X))
        pd.testing.assert_frame_equal(new.obs, old.obs)
        pd.testing.assert_frame_equal(new.var, old.var)
        assert sorted(new.obsm.keys()) == sorted(old.obsm.keys())
        assert sorted(new.layers.keys()) == sorted(old.layers.keys())
        assert sorted(new.uns.keys()) == sorted(old.uns.keys())


def test_batch_and_labels_pulled_from_modalities(synthetic_mosaic):
    mdata = synthetic_mosaic
    assert "batch" not in mdata.obs.columns
    assert "cell_type" not in mdata.obs.columns
    MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type")
    expected_batch = [name.split("_")[0] for name in mdata.obs_names]
    np.testing.assert_array_equal(mdata.obs["batch"].astype(str).to_numpy(), expected_batch)
    for modality in ["rna", "atac", "adt"]:
        adata = mdata.mod[modality]
        pulled = mdata.obs.loc[adata.obs_names, "cell_type"].astype(str)
        np.testing.assert_array_equal(
            pulled.to_numpy(), adata.obs["cell_type"].astype(str).to_numpy()
        )
    model = small_model(mdata)
    assert model.summary_stats.n_batch == 4
    assert model.summary_stats.n_labels == 3


def test_batch_key_in_global_obs_is_used_as_is(synthetic_mosaic):
    mdata = synthetic_mosaic
    mdata.obs["sample"] = np.where(mdata.obs_names.str.startswith("b1"), "s1", "s2")
    MosaicVI.setup_mudata(mdata, batch_key="sample")
    assert small_model(mdata).summary_stats.n_batch == 2


def test_modalities_disagreeing_on_batch_raise(synthetic_mosaic):
    mdata = synthetic_mosaic
    atac = mdata.mod["atac"]
    atac.obs["batch"] = atac.obs["batch"].astype(str)
    atac.obs.loc["b3_cell0", "batch"] = "b4"
    with pytest.raises(ValueError, match="disagree"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")


def test_modality_subset_and_stale_entries(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    assert obsm_key("atac") in mdata.obsm
    # b1 is RNA-only, b2 ADT-only, b3/b4 have RNA: every cell is covered without ATAC.
    MosaicVI.setup_mudata(mdata, modalities=["rna", "adt"], batch_key="batch")
    assert obsm_key("atac") not in mdata.obsm
    assert list(mdata.obsm[PRESENCE].columns) == ["rna", "adt"]
    model = small_model(mdata)
    assert model.modalities == {"rna": "rna", "adt": "adt"}


def test_paired_mudata(synthetic_mosaic):
    paired_cells = [f"b3_cell{i}" for i in range(100)]
    mdata = mudata.MuData(
        {m: synthetic_mosaic.mod[m][paired_cells].copy() for m in ["rna", "atac", "adt"]}
    )
    mdata.obs["batch"] = np.where(np.arange(mdata.n_obs) % 2 == 0, "x", "y")
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    presence = mdata.obsm[PRESENCE]
    assert presence.shape == (100, 3)
    assert presence.to_numpy().all()
    model = small_model(mdata)
    model.train(max_epochs=1, batch_size=64, early_stopping=False, enable_progress_bar=False)
    latent = model.get_latent_representation()
    assert latent.shape == (100, 4)
    assert np.isfinite(latent).all()


# --------------------------------------------------------------------------------------------------
# Kinds
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "kinds"),
    [
        ({"rna": "gex", "atac": "peaks", "adt": "prot"}, ["rna", "atac", "adt"]),
        ({"rna": "RNA", "atac": "ATAC", "adt": "protein"}, ["rna", "atac", "adt"]),
        ({"rna": "rna", "atac": "atac", "adt": "adt"}, ["rna", "atac", "adt"]),
    ],
)
def test_kinds_inferred_from_names(synthetic_mosaic, names, kinds):
    mdata = mudata.MuData(
        {names[m]: synthetic_mosaic.mod[m].copy() for m in ["rna", "atac", "adt"]}
    )
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata)
    assert model.modalities == {
        names[m]: k for m, k in zip(["rna", "atac", "adt"], kinds, strict=True)
    }
    likelihoods = {m: lik.name for m, lik in model.module.likelihoods.items()}
    assert likelihoods[names["rna"]] == "nb"
    assert likelihoods[names["atac"]] == "bernoulli"
    assert likelihoods[names["adt"]] == "nb"


def test_unknown_modality_name_needs_explicit_kind(synthetic_mosaic):
    mdata = mudata.MuData({"foo": synthetic_mosaic.mod["rna"].copy()})
    with pytest.raises(ValueError, match="foo"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")
    assert not any(k.startswith("_mosaicvi") for k in mdata.obsm)
    MosaicVI.setup_mudata(mdata, modalities={"foo": "counts"}, batch_key="batch")
    model = small_model(mdata)
    assert model.modalities == {"foo": "counts"}
    assert {m: lik.name for m, lik in model.module.likelihoods.items()} == {"foo": "nb"}


def test_explicit_kind_overrides_name(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(
        mdata, modalities={"rna": "rna", "atac": "counts", "adt": "adt"}, batch_key="batch"
    )
    model = small_model(mdata)
    assert model.modalities["atac"] == "counts"
    assert model.module.likelihoods["atac"].name == "nb"


@pytest.mark.parametrize("bad_kind", ["dna", "RNA "])
def test_invalid_kind_raises(synthetic_mosaic, bad_kind):
    with pytest.raises(ValueError, match="must be one of"):
        MosaicVI.setup_mudata(synthetic_mosaic, modalities={"rna": bad_kind}, batch_key="batch")


def test_empty_or_string_modalities_raise(synthetic_mosaic):
    with pytest.raises(ValueError, match="empty"):
        MosaicVI.setup_mudata(synthetic_mosaic, modalities={})
    with pytest.raises(TypeError, match="string"):
        MosaicVI.setup_mudata(synthetic_mosaic, modalities="rna")
    with pytest.raises(ValueError, match="foo"):
        MosaicVI.setup_mudata(synthetic_mosaic, modalities=["foo"])
    assert not any(k.startswith("_mosaicvi") for k in synthetic_mosaic.obsm)


def test_unknown_modality_in_modalities_raises(synthetic_mosaic):
    with pytest.raises(ValueError, match="does not have"):
        MosaicVI.setup_mudata(synthetic_mosaic, modalities={"rna": "rna", "hic": "counts"})


# --------------------------------------------------------------------------------------------------
# Counts and layers
# --------------------------------------------------------------------------------------------------


def _normalise_rna(mdata: mudata.MuData) -> np.ndarray:
    """Move RNA counts to layers['counts'] and put log-normalised values in X."""
    rna = mdata.mod["rna"]
    counts = dense(rna.X)
    rna.layers["counts"] = sp.csr_matrix(counts)
    library = np.maximum(counts.sum(1, keepdims=True), 1)
    rna.X = sp.csr_matrix(np.log1p(counts / library * 1e4).astype(np.float32))
    return counts


def test_layers_counts(synthetic_mosaic):
    mdata = synthetic_mosaic
    counts = _normalise_rna(mdata)
    MosaicVI.setup_mudata(mdata, layers={"rna": "counts"}, batch_key="batch")
    aligned = dense(mdata.obsm[obsm_key("rna")])
    rows = mdata.obs_names.get_indexer(mdata.mod["rna"].obs_names)
    np.testing.assert_array_equal(aligned[rows], counts)
    # Other modalities are still read from X.
    adt = mdata.mod["adt"]
    rows = mdata.obs_names.get_indexer(adt.obs_names)
    np.testing.assert_array_equal(dense(mdata.obsm[obsm_key("adt")])[rows], dense(adt.X))


def test_single_layer_name_for_all_modalities(synthetic_mosaic):
    mdata = synthetic_mosaic
    for adata in mdata.mod.values():
        adata.layers["raw"] = adata.X.copy()
        adata.X = adata.X * 0.5
    MosaicVI.setup_mudata(mdata, layers="raw", batch_key="batch")
    for modality, adata in mdata.mod.items():
        rows = mdata.obs_names.get_indexer(adata.obs_names)
        aligned = dense(mdata.obsm[obsm_key(modality)])[rows]
        np.testing.assert_array_equal(aligned, dense(adata.layers["raw"]))


def test_non_integer_x_raises_mentioning_layers(synthetic_mosaic):
    mdata = synthetic_mosaic
    _normalise_rna(mdata)
    before = snapshot(mdata)
    with pytest.raises(ValueError, match="layers"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")
    assert_unchanged(mdata, before)


def test_missing_layer_raises(synthetic_mosaic):
    with pytest.raises(ValueError, match="no layer"):
        MosaicVI.setup_mudata(synthetic_mosaic, layers={"rna": "counts"}, batch_key="batch")


def test_layers_for_unknown_modality_raise(synthetic_mosaic):
    with pytest.raises(ValueError, match="not modelled"):
        MosaicVI.setup_mudata(synthetic_mosaic, layers={"hic": "counts"}, batch_key="batch")


def test_negative_values_raise(synthetic_mosaic):
    mdata = synthetic_mosaic
    adt = mdata.mod["adt"]
    x = dense(adt.X)
    x[3, 2] = -1
    adt.X = sp.csr_matrix(x)
    before = snapshot(mdata)
    with pytest.raises(ValueError, match="negative"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")
    assert_unchanged(mdata, before)


def test_nan_values_raise(synthetic_mosaic):
    mdata = synthetic_mosaic
    rna = mdata.mod["rna"]
    x = dense(rna.X)
    x[5, 5] = np.nan
    rna.X = x
    with pytest.raises(ValueError, match="NaN"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")


def test_dense_integer_counts_accepted(synthetic_mosaic):
    mdata = synthetic_mosaic
    adt = mdata.mod["adt"]
    adt.X = dense(adt.X).astype(np.int64)
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    aligned = mdata.obsm[obsm_key("adt")]
    assert sp.issparse(aligned)
    assert aligned.dtype == np.float32
    rows = mdata.obs_names.get_indexer(adt.obs_names)
    np.testing.assert_array_equal(dense(aligned)[rows], adt.X.astype(np.float32))


# --------------------------------------------------------------------------------------------------
# Structural errors, and nothing written when setup fails
# --------------------------------------------------------------------------------------------------


def test_duplicate_feature_names_across_modalities_raise(synthetic_mosaic):
    mdata = synthetic_mosaic
    adt = mdata.mod["adt"]
    adt.var_names = [f"gene{i}" for i in range(adt.n_vars)]
    mdata.update()
    before = snapshot(mdata)
    with pytest.raises(ValueError, match="Feature names repeat"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")
    assert_unchanged(mdata, before)


def test_cell_in_no_modelled_modality_raises(synthetic_mosaic):
    mdata = synthetic_mosaic
    before = snapshot(mdata)
    # b2 cells only have ADT.
    with pytest.raises(ValueError, match="none of the modelled modalities"):
        MosaicVI.setup_mudata(mdata, modalities=["rna", "atac"], batch_key="batch")
    assert_unchanged(mdata, before)


def test_missing_batch_key_raises(synthetic_mosaic):
    mdata = synthetic_mosaic
    before = snapshot(mdata)
    with pytest.raises(ValueError, match="not_a_column"):
        MosaicVI.setup_mudata(mdata, batch_key="not_a_column")
    assert_unchanged(mdata, before)


def test_batch_key_only_in_some_modalities_leaves_cells_without_batch(synthetic_mosaic):
    mdata = synthetic_mosaic
    # ADT-only cells (b2) then have no batch value anywhere.
    for modality in ["rna", "atac"]:
        mdata.mod[modality].obs["sample"] = mdata.mod[modality].obs["batch"]
    before = snapshot(mdata)
    with pytest.raises(ValueError, match="no value"):
        MosaicVI.setup_mudata(mdata, batch_key="sample")
    assert_unchanged(mdata, before)


def test_modality_name_with_dot_raises(synthetic_mosaic):
    mdata = mudata.MuData({"rna.v2": synthetic_mosaic.mod["rna"].copy()})
    with pytest.raises(ValueError, match="no '.'"):
        MosaicVI.setup_mudata(mdata, modalities={"rna.v2": "rna"}, batch_key="batch")


def test_failed_registration_restores_data(synthetic_mosaic):
    """A failure after the layout is written (here: a bad keyword to register_fields) is undone."""
    mdata = synthetic_mosaic
    before = snapshot(mdata)
    with pytest.raises(TypeError):
        MosaicVI.setup_mudata(mdata, batch_key="batch", not_an_argument=1)
    assert_unchanged(mdata, before)
    assert "batch" not in mdata.obs.columns


def test_failed_setup_keeps_earlier_setup(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    before = snapshot(mdata)
    atac_before = mdata.obsm[obsm_key("atac")]
    with pytest.raises(TypeError):
        MosaicVI.setup_mudata(
            mdata, modalities=["rna", "adt"], batch_key="batch", not_an_argument=1
        )
    assert_unchanged(mdata, before)
    assert mdata.obsm[obsm_key("atac")] is atac_before
    # The earlier registration still works.
    model = small_model(mdata)
    assert list(model.modalities) == ["rna", "atac", "adt"]


def test_modality_with_cells_outside_global_obs_raises():
    rng = np.random.default_rng(0)
    rna = ad.AnnData(sp.csr_matrix(rng.poisson(1.0, (5, 4)).astype(np.float32)))
    rna.obs_names = [f"c{i}" for i in range(5)]
    rna.var_names = [f"g{i}" for i in range(4)]
    rna.obs["batch"] = "a"
    mdata = mudata.MuData({"rna": rna})
    # Rename cells of the modality without calling mdata.update().
    mdata.mod["rna"].obs_names = [f"d{i}" for i in range(5)]
    with pytest.raises(ValueError, match="not in mdata.obs_names"):
        MosaicVI.setup_mudata(mdata, batch_key="batch")
