"""mosaicvi.data.synthetic_mosaic: resampled SNARE-seq mosaics of any size (small sizes here)."""

from __future__ import annotations

import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mosaicvi
from mosaicvi.data._synthetic_mosaic import protein_profiles


@pytest.fixture(scope="module")
def paired() -> mudata.MuData:
    return mosaicvi.data.snareseq()


@pytest.fixture(scope="module")
def mosaic(paired) -> mudata.MuData:
    return mosaicvi.data.synthetic_mosaic(3000, seed=1, source=paired, chunk_size=700)


def _type_means(adata, column="cell_type") -> pd.DataFrame:
    x = sp.csr_matrix(adata.X)
    depth = np.asarray(x.sum(1)).ravel()
    normalised = sp.diags(1e4 / np.maximum(depth, 1)) @ x
    types = adata.obs[column].astype(str).to_numpy()
    return pd.DataFrame(
        {t: np.asarray(normalised[types == t].mean(0)).ravel() for t in np.unique(types)}
    ).T


def test_layout_and_format(mosaic, paired):
    assert mosaic.n_obs == 3000
    assert list(mosaic.mod) == ["rna", "atac", "adt"]
    batches = sorted(paired.obs["batch"].unique())
    expected = {
        "rna": batches[:8],
        "atac": batches[:4] + batches[8:11],
        "adt": [batches[i] for i in (0, 1, 4, 5, 11)],
    }
    for name, adata in mosaic.mod.items():
        assert sp.isspmatrix_csr(adata.X) and adata.X.dtype == np.float32
        values = adata.X.data
        assert values.min() > 0 and np.array_equal(values, np.round(values))
        assert sorted(adata.obs["batch"].astype(str).unique()) == expected[name]
        rows = mosaic.obs_names.get_indexer(adata.obs_names)
        assert np.all(np.diff(rows) > 0), f"{name} cells are not in global order"
    assert mosaic["rna"].n_vars == paired["rna"].n_vars
    assert mosaic["atac"].n_vars == paired["atac"].n_vars
    assert mosaic["adt"].n_vars == 50
    assert {"batch", "cell_type", "cell_type_coarse"} <= set(mosaic.obs.columns)
    assert mosaic.obs["batch"].notna().all()


def test_same_seed_same_data(paired, mosaic):
    again = mosaicvi.data.synthetic_mosaic(3000, seed=1, source=paired, chunk_size=700)
    other = mosaicvi.data.synthetic_mosaic(3000, seed=2, source=paired, chunk_size=700)
    assert (again.obs_names == mosaic.obs_names).all()
    assert (again.obs["cell_type"] == mosaic.obs["cell_type"]).all()
    for name in mosaic.mod:
        assert (mosaic[name].X != again[name].X).nnz == 0
        assert mosaic[name].X.sum() != other[name].X.sum()


def test_cells_keep_the_profile_of_their_type(mosaic, paired):
    real = _type_means(paired["rna"])
    made = _type_means(mosaic["rna"])
    common = made.index.intersection(real.index)
    big = [t for t in common if (mosaic["rna"].obs["cell_type"] == t).sum() >= 30]
    assert len(big) >= 5
    for t in big:
        same = np.corrcoef(np.log1p(made.loc[t]), np.log1p(real.loc[t]))[0, 1]
        others = [
            np.corrcoef(np.log1p(made.loc[t]), np.log1p(real.loc[u]))[0, 1] for u in big if u != t
        ]
        assert same > 0.9 and same > max(others), t
    depth_real = paired["rna"].X.sum() / paired["rna"].n_obs
    depth_made = mosaic["rna"].X.sum() / mosaic["rna"].n_obs
    assert 0.7 * depth_real < depth_made < 0.95 * depth_real


def test_proteins_follow_the_type_profiles(mosaic, paired):
    profiles, names = protein_profiles(paired, 50)
    assert list(mosaic["adt"].var_names) == names
    assert all(n.removesuffix("_prot") in paired["rna"].var_names for n in names)
    adt = mosaic["adt"]
    types = adt.obs["cell_type"].astype(str)
    counted = types.value_counts()
    for t in counted.index[counted >= 40]:
        mean = np.asarray(adt.X[(types == t).to_numpy()].mean(0)).ravel()
        assert np.corrcoef(mean, profiles.loc[t])[0, 1] > 0.8, t


def test_rna_atac_only_and_custom_layout(paired):
    two = mosaicvi.data.synthetic_mosaic(800, modalities=["rna", "atac"], source=paired)
    assert list(two.mod) == ["rna", "atac"]
    batches = sorted(paired.obs["batch"].unique())
    assert sorted(two["atac"].obs["batch"].unique()) == batches[:4] + batches[8:]
    custom = mosaicvi.data.synthetic_mosaic(
        500, modalities=["rna", "adt"], layout={"adt": ["09A"]}, n_proteins=10, source=paired
    )
    assert set(custom["adt"].obs["batch"]) == {"09A"}
    assert custom["adt"].n_vars == 10
    assert custom["rna"].n_obs == 500


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_cells": 0}, "n_cells"),
        ({"n_cells": 10, "modalities": ["rna", "protein"]}, "modalities"),
        ({"n_cells": 10, "layout": {"atac": ["09Z"]}}, "09Z"),
        ({"n_cells": 10, "modalities": ["rna"], "layout": {"atac": ["09A"]}}, "layout"),
    ],
)
def test_bad_arguments(paired, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mosaicvi.data.synthetic_mosaic(source=paired, **kwargs)


def test_trains(paired, train_quick):
    atac = paired["atac"]
    peaks = np.argsort(-np.asarray((atac.X > 0).sum(0)).ravel())[:1000]
    small = mudata.MuData({"rna": paired["rna"].copy(), "atac": atac[:, np.sort(peaks)].copy()})
    small.obs = paired.obs.copy()
    mdata = mosaicvi.data.synthetic_mosaic(600, source=small, n_proteins=20, seed=0)
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(mdata, n_latent=4)
    train_quick(model, max_epochs=1)
    presence = model.get_attention_weights() > 0
    assert presence.sum().min() > 0
