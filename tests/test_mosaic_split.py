"""``mosaicvi.data.mosaic_split``: hide modalities in some batches of a paired MuData."""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mosaicvi
from mosaicvi import MosaicVI

BATCHES = ["p", "q", "r", "s"]


@pytest.fixture
def paired() -> mudata.MuData:
    """Paired RNA + ATAC + ADT, 4 batches of 15 cells; batch/cell_type in the global obs."""
    rng = np.random.default_rng(3)
    n_per_batch = 15
    cells = [f"{b}-{i}" for b in BATCHES for i in range(n_per_batch)]
    mods = {}
    for name, n_features, prefix in [("rna", 20, "g"), ("atac", 30, "pk"), ("adt", 5, "ab")]:
        x = rng.poisson(1.0, (len(cells), n_features)).astype(np.float32)
        adata = ad.AnnData(
            X=sp.csr_matrix(x),
            obs=pd.DataFrame({"qc": rng.uniform(size=len(cells))}, index=cells),
            var=pd.DataFrame(index=[f"{prefix}{j}" for j in range(n_features)]),
        )
        mods[name] = adata
    mdata = mudata.MuData(mods)
    # Shuffle the global order so that order preservation is tested.
    mdata = mdata[rng.permutation(mdata.n_obs)].copy()
    mdata.obs["batch"] = pd.Categorical([c.split("-")[0] for c in mdata.obs_names])
    mdata.obs["cell_type"] = rng.choice(["x", "y", "z"], size=mdata.n_obs)
    return mdata


def batches_of(adata) -> set[str]:
    return {name.split("-")[0] for name in adata.obs_names}


def test_drops_modalities_from_the_right_batches(paired):
    mosaic = mosaicvi.data.mosaic_split(paired, {"rna": ["p", "q"], "atac": ["q", "r"]})
    assert batches_of(mosaic.mod["rna"]) == {"p", "q"}
    assert batches_of(mosaic.mod["atac"]) == {"q", "r"}
    # Modalities not named stay in every batch.
    assert batches_of(mosaic.mod["adt"]) == set(BATCHES)
    # All cells of a kept batch stay (15 per batch).
    assert mosaic.mod["rna"].n_obs == 30
    assert mosaic.mod["atac"].n_obs == 30
    assert mosaic.mod["adt"].n_obs == 60
    assert mosaic.n_obs == 60


def test_cells_without_any_modality_are_dropped(paired):
    mosaic = mosaicvi.data.mosaic_split(
        paired, {"rna": ["p", "q"], "atac": ["q", "r"], "adt": ["p"]}
    )
    assert batches_of(mosaic) == {"p", "q", "r"}
    assert mosaic.n_obs == 45
    assert "s" not in set(mosaic.obs["batch"].astype(str))


def test_counts_and_obs_are_kept(paired):
    mosaic = mosaicvi.data.mosaic_split(paired, {"rna": ["p"], "atac": ["r", "s"]})
    for name in ["rna", "atac", "adt"]:
        new, old = mosaic.mod[name], paired.mod[name]
        np.testing.assert_array_equal(new.X.toarray(), old[new.obs_names].X.toarray())
        pd.testing.assert_frame_equal(new.obs, old.obs.loc[new.obs_names])
        assert new.var_names.equals(old.var_names)
    for column in ["batch", "cell_type"]:
        assert column in mosaic.obs.columns
        np.testing.assert_array_equal(
            mosaic.obs[column].astype(str).to_numpy(),
            paired.obs.loc[mosaic.obs_names, column].astype(str).to_numpy(),
        )


def test_obs_columns_follow_their_cells(paired):
    mosaic = mosaicvi.data.mosaic_split(paired, {"rna": ["p", "s"], "atac": ["q"], "adt": ["r"]})
    positions = paired.obs_names.get_indexer(mosaic.obs_names)
    assert (positions >= 0).all()
    assert mosaic.obs_names.is_unique
    for column in ["batch", "cell_type"]:
        np.testing.assert_array_equal(
            mosaic.obs[column].astype(str).to_numpy(),
            paired.obs[column].astype(str).to_numpy()[positions],
        )
    assert isinstance(mosaic.obs["batch"].dtype, pd.CategoricalDtype) == isinstance(
        paired.obs["batch"].dtype, pd.CategoricalDtype
    )


def test_input_not_modified(paired):
    before = paired.copy()
    # pandas' own copy: mudata 0.4's MuData.copy turns pandas 3 "str" columns into "string".
    before_obs = paired.obs.copy()
    mosaicvi.data.mosaic_split(paired, {"rna": ["p"], "atac": ["q", "r"]})
    assert paired.shape == before.shape
    assert paired.obs_names.equals(before.obs_names)
    pd.testing.assert_frame_equal(paired.obs, before_obs)
    for name in ["rna", "atac", "adt"]:
        assert paired.mod[name].shape == before.mod[name].shape
        np.testing.assert_array_equal(paired.mod[name].X.toarray(), before.mod[name].X.toarray())
        pd.testing.assert_frame_equal(paired.mod[name].obs, before.mod[name].obs)


def test_result_is_an_independent_copy(paired):
    mosaic = mosaicvi.data.mosaic_split(paired, {"rna": ["p", "q", "r", "s"]})
    mosaic.mod["adt"].X.data[:] = 999
    assert paired.mod["adt"].X.max() < 999


def test_unknown_batch_raises(paired):
    with pytest.raises(ValueError, match="'zz'"):
        mosaicvi.data.mosaic_split(paired, {"rna": ["p", "zz"]})


def test_unknown_modality_raises(paired):
    with pytest.raises(ValueError, match="hic"):
        mosaicvi.data.mosaic_split(paired, {"hic": ["p"]})


def test_unknown_batch_key_raises(paired):
    with pytest.raises(ValueError, match="sample"):
        mosaicvi.data.mosaic_split(paired, {"rna": ["p"]}, batch_key="sample")


def test_result_sets_up(paired):
    mosaic = mosaicvi.data.mosaic_split(
        paired, {"rna": ["p", "q"], "atac": ["q", "r"], "adt": ["r", "s"]}
    )
    MosaicVI.setup_mudata(mosaic, batch_key="batch")
    presence = mosaic.obsm["_mosaicvi_presence"]
    batch = mosaic.obs["batch"].astype(str)
    np.testing.assert_array_equal(presence["rna"].to_numpy(), batch.isin(["p", "q"]).to_numpy())
    np.testing.assert_array_equal(presence["atac"].to_numpy(), batch.isin(["q", "r"]).to_numpy())
    np.testing.assert_array_equal(presence["adt"].to_numpy(), batch.isin(["r", "s"]).to_numpy())


def test_snareseq_small_design(snareseq_small, snareseq_batches):
    mdata = snareseq_small()
    batches = snareseq_batches
    assert len(batches) == 12
    assert batches_of_column(mdata.mod["rna"]) == set(batches[:8])
    assert batches_of_column(mdata.mod["atac"]) == set(batches[:4] + batches[8:])
    assert mdata.mod["atac"].n_vars == 3000
    assert 900 <= mdata.n_obs <= 1100
    both = mdata.obs_names.isin(mdata.mod["rna"].obs_names) & mdata.obs_names.isin(
        mdata.mod["atac"].obs_names
    )
    assert set(mdata.obs.loc[both, "batch"].astype(str)) == set(batches[:4])


def batches_of_column(adata) -> set[str]:
    return set(adata.obs["batch"].astype(str))
