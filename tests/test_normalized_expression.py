"""get_normalized_expression: every modality for every cell, fixed library, measuring batches."""

from __future__ import annotations

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
import torch

import mosaicvi

#: Which modalities each batch measured (60 cells each, two cell types).
DESIGN = {"b1": ("rna",), "b2": ("adt",), "b3": ("rna", "atac", "adt"), "b4": ("rna", "atac")}
N_FEATURES = {"rna": 40, "atac": 80, "adt": 10}


def small_mosaic(seed: int = 0) -> mudata.MuData:
    """Unpaired MuData with the :data:`DESIGN` above."""
    rng = np.random.default_rng(seed)
    profiles = {
        m: {t: rng.gamma(1.0, 2.0 if m != "atac" else 0.1, n) for t in "XY"}
        for m, n in N_FEATURES.items()
    }
    rows = {m: [] for m in N_FEATURES}
    for batch, modalities in DESIGN.items():
        for i, kind in enumerate(rng.choice(list("XY"), size=60)):
            for m in modalities:
                counts = rng.poisson(profiles[m][kind])
                rows[m].append(
                    (f"{batch}_{i}", batch, np.minimum(counts, 1) if m == "atac" else counts)
                )
    mods = {}
    for m, cells in rows.items():
        names, batches, counts = zip(*cells, strict=True)
        mods[m] = ad.AnnData(
            X=sp.csr_matrix(np.stack(counts).astype(np.float32)),
            obs=pd.DataFrame({"batch": batches}, index=list(names)),
            var=pd.DataFrame(index=[f"{m}{j}" for j in range(N_FEATURES[m])]),
        )
    return mudata.MuData(mods)


@pytest.fixture(scope="module")
def trained():
    """Small model trained for 3 epochs on :func:`small_mosaic` (shared by this module)."""
    scvi.settings.seed = 0
    mdata = small_mosaic()
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(mdata, n_latent=5, n_hidden=32, n_hidden_decoder=32)
    model.train(
        max_epochs=3,
        accelerator="cpu",
        early_stopping=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return model, mdata


def _cells_of(mdata, batches):
    return np.flatnonzero(mdata.obs["batch"].isin(batches).to_numpy())


def test_measuring_batches(trained):
    model, _ = trained
    assert model.measuring_batches("rna") == ["b1", "b3", "b4"]
    assert model.measuring_batches("atac") == ["b3", "b4"]
    assert model.measuring_batches("adt") == ["b2", "b3"]


@pytest.mark.parametrize("modality", ["rna", "atac", "adt"])
def test_every_cell_gets_every_modality(trained, modality):
    model, mdata = trained
    values = model.get_normalized_expression(modality=modality)
    assert isinstance(values, pd.DataFrame)
    assert values.shape == (mdata.n_obs, mdata[modality].n_vars)
    assert values.index.equals(mdata.obs_names)
    assert values.columns.equals(mdata[modality].var_names)
    assert np.isfinite(values.to_numpy()).all() and (values.to_numpy() > 0).all()


def test_count_modalities_are_proportions_at_library_one(trained):
    model, _ = trained
    rna = model.get_normalized_expression(modality="rna", return_numpy=True)
    assert np.allclose(rna.sum(1), 1.0, atol=1e-4)
    scaled = model.get_normalized_expression(
        modality="rna", library_size=1e4, use_z_mean=True, return_numpy=True
    )
    proportions = model.get_normalized_expression(
        modality="rna", use_z_mean=True, return_numpy=True
    )
    assert np.allclose(scaled, 1e4 * proportions, rtol=1e-4)


def test_imputed_atac_does_not_use_the_missing_library(trained):
    """Cells without ATAC (library 0) are decoded at the fixed library, like measured cells."""
    model, mdata = trained
    atac = model.get_normalized_expression(modality="atac", use_z_mean=True, return_numpy=True)
    assert ((atac > 0) & (atac < 1)).all()
    without = atac[_cells_of(mdata, ["b1", "b2"])].mean()
    measured = atac[_cells_of(mdata, ["b3", "b4"])].mean()
    assert 0.5 < without / measured < 2.0  # an observed library of 0 would give ~0


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def test_cell_library_observed_where_measured_predicted_elsewhere(trained):
    """``library_size="cell"``: ATAC at each cell's own open peaks, else the library its RNA or
    ADT library predicts (a line fitted on the cells that measured both); the logits move by
    ``log(library / median)``."""
    model, mdata = trained
    kwargs = {"modality": "atac", "use_z_mean": True, "return_numpy": True}
    typical = _logit(model.get_normalized_expression(**kwargs))
    per_cell = _logit(model.get_normalized_expression(library_size="cell", **kwargs))
    shift = per_cell - typical
    assert np.allclose(shift, shift[:, :1], atol=1e-3)  # one offset per cell
    reference = float(model.module.decoders["atac"].log_library_reference)
    open_peaks = pd.Series(np.diff(sp.csr_matrix(mdata["atac"].X).indptr), mdata["atac"].obs_names)
    measured = _cells_of(mdata, ["b3", "b4"])
    own = np.log(open_peaks[mdata.obs_names[measured]].clip(lower=1).to_numpy())
    assert np.allclose(shift[measured, 0], own - reference, atol=1e-3)

    def log_library(modality, batches):
        x = mdata[modality][mdata[modality].obs["batch"].isin(batches)].X
        return np.log(np.maximum(np.asarray(x.sum(1)).ravel(), 1.0))

    slope, intercept = np.polyfit(
        log_library("rna", ["b3", "b4"]), np.log(open_peaks.clip(lower=1)), 1
    )
    rna_only = _cells_of(mdata, ["b1"])
    expected = intercept + slope * log_library("rna", ["b1"]) - reference
    assert np.allclose(shift[rna_only, 0], expected, atol=1e-3)
    assert np.ptp(shift[rna_only, 0]) > 0.01  # the cells differ, unlike at one library


def test_cell_library_draws_and_imputed_anndata(trained):
    model, mdata = trained
    draws = model.posterior_predictive_sample(modality="rna", library_size="cell")
    rna = mdata["rna"].X
    observed = np.asarray(rna.sum(1)).ravel()
    rows = mdata.obs_names.get_indexer(mdata["rna"].obs_names)
    ratio = draws[rows].sum(1).mean() / observed.mean()
    assert 0.7 < ratio < 1.3  # drawn at the cells' own totals, not at library 1
    imputed = model.get_imputed("atac", library_size="cell")
    assert imputed.shape == (mdata.n_obs, mdata["atac"].n_vars)


def test_transform_batch_only_into_batches_that_measured(trained):
    model, mdata = trained
    cells = _cells_of(mdata, ["b1"])  # RNA-only cells
    into_b3 = model.get_normalized_expression(
        indices=cells, modality="atac", transform_batch="b3", use_z_mean=True, return_numpy=True
    )
    into_b4 = model.get_normalized_expression(
        indices=cells, modality="atac", transform_batch="b4", use_z_mean=True, return_numpy=True
    )
    both = model.get_normalized_expression(
        indices=cells,
        modality="atac",
        transform_batch=["b3", "b4"],
        use_z_mean=True,
        return_numpy=True,
    )
    assert np.allclose(both, (into_b3 + into_b4) / 2, atol=1e-6)
    default = model.get_normalized_expression(
        indices=cells, modality="atac", use_z_mean=True, return_numpy=True
    )
    assert np.allclose(default, both, atol=1e-6)  # b1 never measured ATAC: averaged over b3, b4
    with pytest.raises(ValueError, match=r"'b1' never measured 'atac'.*\['b3', 'b4'\]"):
        model.get_normalized_expression(modality="atac", transform_batch="b1")
    with pytest.raises(ValueError, match="not a batch of the model"):
        model.get_normalized_expression(modality="atac", transform_batch="b9")


def test_own_batch_when_it_measured(trained):
    model, mdata = trained
    cells = _cells_of(mdata, ["b4"])
    default = model.get_normalized_expression(
        indices=cells, modality="rna", use_z_mean=True, return_numpy=True
    )
    own = model.get_normalized_expression(
        indices=cells, modality="rna", transform_batch="b4", use_z_mean=True, return_numpy=True
    )
    assert np.allclose(default, own, atol=1e-6)


def test_samples_subsets_and_overall(trained):
    model, mdata = trained
    cells = np.arange(10)
    samples = model.get_normalized_expression(
        indices=cells, modality="adt", n_samples=4, return_mean=False
    )
    assert samples.shape == (4, 10, mdata["adt"].n_vars)
    mean = model.get_normalized_expression(indices=cells, modality="adt", n_samples=4)
    assert mean.shape == (10, mdata["adt"].n_vars)
    genes = ["rna3", "rna0"]
    subset = model.get_normalized_expression(
        indices=cells, modality="rna", feature_list=genes, use_z_mean=True
    )
    full = model.get_normalized_expression(indices=cells, modality="rna", use_z_mean=True)
    assert list(subset.columns) == genes
    assert np.allclose(subset.to_numpy(), full[genes].to_numpy())
    overall = model.get_normalized_expression(modality="rna", n_samples_overall=37)
    assert overall.shape == (37, mdata["rna"].n_vars)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modality": None}, "modality"),
        ({"modality": "protein"}, "modality"),
        ({"modality": "rna", "library_size": 0}, "library_size"),
        ({"modality": "rna", "library_size": "mean"}, "library_size"),
        ({"modality": "rna", "feature_list": ["nope"]}, "feature_list"),
        ({"modality": "rna", "n_samples": 0}, "n_samples"),
    ],
)
def test_bad_arguments(trained, kwargs, message):
    model, _ = trained
    with pytest.raises(ValueError, match=message):
        model.get_normalized_expression(**kwargs)


def test_single_anndata_with_feature_types():
    """A 10x-style AnnData (RNA + ADT along var): imputation API and DE write to ``adata.uns``."""
    rng = np.random.default_rng(1)
    groups = rng.choice(list("XY"), size=120)
    rna = rng.poisson(np.where(groups[:, None] == "X", 3.0, 1.0) * np.ones((1, 30)))
    adt = rng.poisson(20.0, (120, 6))
    adata = ad.AnnData(
        X=sp.csr_matrix(np.hstack([rna, adt]).astype(np.float32)),
        obs=pd.DataFrame({"batch": "s1", "group": groups}, index=[f"c{i}" for i in range(120)]),
        var=pd.DataFrame(
            {"feature_types": ["Gene Expression"] * 30 + ["Antibody Capture"] * 6},
            index=[f"g{i}" for i in range(30)] + [f"p{i}" for i in range(6)],
        ),
    )
    scvi.settings.seed = 0
    mosaicvi.MosaicVI.setup_anndata(adata, batch_key="batch")
    model = mosaicvi.MosaicVI(adata, n_latent=3, n_hidden=16, n_hidden_decoder=16)
    model.train(max_epochs=2, accelerator="cpu", enable_progress_bar=False)
    adt_values = model.get_normalized_expression(modality="adt", library_size="median")
    assert list(adt_values.columns) == [f"p{i}" for i in range(6)]
    de = model.differential_features("group", "adt", n_samples=100, key_added="de")
    assert (de["pseudocounts"] == 1.0).all()  # ADT prior count
    assert adata.uns["de"]["params"]["groupby"] == "group"
    assert set(adata.uns["de"]["names"].dtype.names) == {"X", "Y"}


@pytest.mark.parametrize("modality", ["rna", "atac"])
def test_posterior_predictive_sample_draws_counts_around_the_decoded_means(trained, modality):
    model, mdata = trained
    cells = _cells_of(mdata, ["b1", "b2"])  # RNA-only and ATAC-only: one modality imputed
    torch.manual_seed(0)
    draws = model.posterior_predictive_sample(
        indices=cells, modality=modality, n_samples=200, use_z_mean=True
    )
    assert draws.shape == (200, len(cells), mdata[modality].n_vars)
    assert (draws >= 0).all() and np.array_equal(draws, np.round(draws))
    if model.module.likelihoods[modality].binary:
        assert set(np.unique(draws)) <= {0.0, 1.0}
    expected = model.get_normalized_expression(
        indices=cells, modality=modality, library_size="median", use_z_mean=True, return_numpy=True
    )
    np.testing.assert_allclose(draws.mean(0).mean(0), expected.mean(0), rtol=0.25, atol=0.05)
    single = model.posterior_predictive_sample(indices=cells[:5], modality=modality)
    assert single.shape == (5, mdata[modality].n_vars)
