"""Feature masks: batches that measured different panels of one modality (issue 22, item 1)."""

from __future__ import annotations

import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS

import mosaicvi
from mosaicvi._constants import PRESENCE_OBSM_KEY, modality_registry_key
from mosaicvi.model._de_statistics import raw_statistics
from mosaicvi.nn._likelihoods import get_likelihood

SMALL = {"n_hidden": 32, "n_hidden_decoder": 32, "n_latent": 8, "n_attention": 16}


def _parts(n_cells: int = 60) -> dict:
    """BMMC starter parts (counts in X, one batch name per assay and sample), a few cells each."""
    parts = mosaicvi.data.neurips2021_bmmc_starter()
    rng = np.random.default_rng(0)
    multiome = np.sort(rng.choice(parts["multiome_rna"].n_obs, n_cells, replace=False))
    cite = np.sort(rng.choice(parts["cite_rna"].n_obs, n_cells, replace=False))
    chosen = {"multiome": multiome, "cite": cite}
    out = {}
    for name, adata in parts.items():
        adata = adata[chosen[name.split("_")[0]]].copy()
        adata.X = sp.csr_matrix(adata.layers["counts"])
        adata.obs["batch"] = name.split("_")[0] + "_" + adata.obs["batch"].astype(str)
        out[name] = adata
    out["cite_adt"].var_names = out["cite_adt"].var_names + "_prot"
    return out


def _mosaic(parts: dict, unmeasured_noise: int | None = None):
    """Three-modality mosaic, RNA = union of both panels, and the RNA mask (batches x genes).

    ``unmeasured_noise``: seed of random counts written into the entries no batch of a cell
    measured (which the model must ignore).
    """
    rna, mask = mosaicvi.data.concat_panels([parts["multiome_rna"], parts["cite_rna"]])
    if unmeasured_noise is not None:
        rng = np.random.default_rng(unmeasured_noise)
        unmeasured = ~mask.loc[rna.obs["batch"].astype(str)].to_numpy()
        dense = rna.X.toarray()
        dense[unmeasured] = rng.poisson(3.0, size=int(unmeasured.sum()))
        rna.X = sp.csr_matrix(dense)
    mdata = mudata.MuData({"rna": rna, "atac": parts["multiome_atac"], "adt": parts["cite_adt"]})
    return mdata, mask


def _setup(mdata, mask, **kwargs):
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", feature_masks={"rna": mask}, **kwargs)


def _loss(model, mdata) -> tuple[float, float]:
    """Total loss and RNA reconstruction of all cells in one minibatch, in eval mode, seeded."""
    model.module.eval()
    loader = model._make_data_loader(adata=mdata, batch_size=mdata.n_obs, shuffle=False)
    tensors = next(iter(loader))
    torch.manual_seed(0)
    with torch.no_grad():
        _, _, losses = model.module(tensors)
    return float(losses.loss), float(losses.reconstruction_loss["rna"].sum())


@pytest.fixture(scope="module")
def parts():
    return _parts()


def test_concat_panels_records_who_measured_what(parts):
    rna, mask = mosaicvi.data.concat_panels([parts["multiome_rna"], parts["cite_rna"]])
    union = parts["multiome_rna"].var_names.union(parts["cite_rna"].var_names)
    assert rna.n_vars == len(union) and list(mask.columns) == list(rna.var_names)
    assert mask.dtypes.map(pd.api.types.is_bool_dtype).all()
    for batch in ("multiome_s1d1", "multiome_s1d2"):
        assert set(mask.columns[mask.loc[batch]]) == set(parts["multiome_rna"].var_names)
    assert set(mask.columns[mask.loc["cite_s1d1"]]) == set(parts["cite_rna"].var_names)
    # the counts are those of the parts, zeros elsewhere
    gene = parts["cite_rna"].var_names.difference(parts["multiome_rna"].var_names)[0]
    assert rna[parts["multiome_rna"].obs_names, gene].X.sum() == 0
    expected = parts["cite_rna"][:, gene].X.toarray().ravel()
    np.testing.assert_array_equal(
        rna[parts["cite_rna"].obs_names, gene].X.toarray().ravel(), expected
    )


def test_concat_panels_refuses_a_batch_split_across_panels(parts):
    other = parts["cite_rna"].copy()
    other.obs["batch"] = "multiome_s1d1"
    with pytest.raises(ValueError, match="several parts with different features"):
        mosaicvi.data.concat_panels([parts["multiome_rna"], other])


@pytest.mark.parametrize("transform", ["log_normalize", "tfidf", "clr"])
def test_unmeasured_counts_cannot_change_the_loss_or_the_statistics(parts, transform):
    clean, mask = _mosaic(parts)
    noisy, _ = _mosaic(parts, unmeasured_noise=1)
    _setup(clean, mask)
    _setup(noisy, mask)
    model = mosaicvi.MosaicVI(clean, input_transforms={"rna": transform}, **SMALL)
    other = mosaicvi.MosaicVI(noisy, input_transforms={"rna": transform}, **SMALL)
    # input statistics (IDF), decoder biases and library reference ignore unmeasured entries
    mine, theirs = model.module.state_dict(), other.module.state_dict()
    assert mine.keys() == theirs.keys()
    names = ["decoders.rna.batch_bias", "decoders.rna.log_library_reference"]
    if transform == "tfidf":
        names.append("encoders.rna.transform.idf")
    for name in names:
        torch.testing.assert_close(theirs[name], mine[name])
    other.module.load_state_dict(mine)
    total, rna = _loss(model, clean)
    total_noisy, rna_noisy = _loss(other, noisy)
    assert total_noisy == pytest.approx(total, rel=1e-6)
    assert rna_noisy == pytest.approx(rna, rel=1e-6)
    model.is_trained_ = other.is_trained_ = True  # the same (untrained) weights suffice here
    np.testing.assert_allclose(
        other.get_latent_representation(), model.get_latent_representation(), atol=1e-5
    )


def test_without_masks_the_same_noise_changes_the_loss(parts):
    """The check above can fail: unmasked, the noise is data (never inferred from zeros)."""
    clean, _ = _mosaic(parts)
    noisy, _ = _mosaic(parts, unmeasured_noise=1)
    for mdata in (clean, noisy):
        mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(clean, input_transforms={"rna": "tfidf"}, **SMALL)
    assert model.module.masked_modalities == {}
    other = mosaicvi.MosaicVI(noisy, input_transforms={"rna": "tfidf"}, **SMALL)
    idf = "encoders.rna.transform.idf"
    assert not torch.allclose(other.module.state_dict()[idf], model.module.state_dict()[idf])
    other.module.load_state_dict(model.module.state_dict())
    assert _loss(other, noisy)[1] != pytest.approx(_loss(model, clean)[1], rel=1e-3)


@pytest.mark.parametrize("name", ["nb", "zinb", "poisson", "bernoulli"])
@pytest.mark.parametrize("sparse", [False, True])
def test_likelihoods_drop_unmeasured_entries(name, sparse):
    likelihood = get_likelihood(name)
    generator = torch.Generator().manual_seed(0)
    n, f = 5, 7
    logits = torch.randn(n, f, generator=generator)
    mask = torch.rand(n, f, generator=generator) > 0.4
    mask[:, 0] = True
    tables = {p: torch.zeros(1, f) for p in likelihood.batch_parameters}
    batch = torch.zeros(n, dtype=torch.long)
    params = likelihood.parameters(logits, torch.full((n,), 50.0), batch, tables)
    params["feature_mask"] = mask
    x = torch.poisson(torch.full((n, f), 2.0), generator=generator)
    changed = torch.where(mask, x, x + 5.0)

    def nll(counts):
        return likelihood.negative_log_likelihood(
            counts.to_sparse_csr() if sparse else counts, params
        )

    torch.testing.assert_close(nll(changed), nll(x))
    measured_changed = x.clone()
    measured_changed[0, 0] = 0.0 if x[0, 0] > 0 else 5.0
    assert not torch.allclose(nll(measured_changed), nll(x))


def test_de_raw_means_ignore_unmeasured_entries():
    counts = sp.csr_matrix(np.array([[1, 9], [3, 9], [5, 0], [7, 2]], dtype=float))
    codes = np.array([0, 0, 1, 1])  # batch 0 did not measure feature 1
    table = np.array([[True, False], [True, True]])
    group1 = np.array([True, True, True, False])
    group2 = np.array([False, False, False, True])
    stats = raw_statistics(counts, np.ones(4, bool), group1, group2, (codes, table))
    np.testing.assert_allclose(stats["raw_mean1"], [3.0, 0.0])  # feature 1: cell 2 only
    np.testing.assert_allclose(stats["non_zeros_proportion1"], [1.0, 0.0])
    np.testing.assert_allclose(stats["raw_mean2"], [7.0, 2.0])
    only_unmeasured = raw_statistics(
        counts, np.ones(4, bool), np.array([True, True, False, False]), group2, (codes, table)
    )
    assert np.isnan(only_unmeasured["raw_mean1"][1])


def test_differential_features_run_with_masks(parts, train_quick):
    mdata, mask = _mosaic(parts)
    _setup(mdata, mask)
    model = mosaicvi.MosaicVI(mdata, **SMALL)
    train_quick(model, max_epochs=1)
    de = model.differential_features(
        groupby="batch", modality="rna", group1=["cite_s1d1"], n_samples=3, silent=True
    )
    multiome_only = parts["multiome_rna"].var_names.difference(parts["cite_rna"].var_names)
    # raw means of the reference group (other batches) count only its measuring cells
    gene = multiome_only[0]
    assert de.loc[gene, "raw_mean1"] != de.loc[gene, "raw_mean1"]  # NaN: cite_s1d1 never did


def _expect_setup_error(mdata, masks, match, error=ValueError, **kwargs):
    before = set(mdata.obsm)
    with pytest.raises(error, match=match):
        mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", feature_masks=masks, **kwargs)
    assert set(mdata.obsm) == before and PRESENCE_OBSM_KEY not in mdata.obsm


def test_bad_masks_get_clear_errors(parts):
    mdata, mask = _mosaic(parts)
    _expect_setup_error(mdata, {"rna": mask.T}, "transposed")
    _expect_setup_error(mdata, {"rna": mask.iloc[:, :-3]}, "3 missing")
    wrong_batch = mask.rename(index={"cite_s1d1": "cite_s9"})
    _expect_setup_error(mdata, {"rna": wrong_batch}, "batches not in the data")
    _expect_setup_error(mdata, {"protein": mask}, "not a modelled modality")
    _expect_setup_error(mdata, {"rna": mask.astype(int)}, "booleans", TypeError)
    _expect_setup_error(mdata, {"rna": mask.to_numpy()}, "DataFrame", TypeError)
    empty = mask.copy()
    empty.loc["multiome_s1d2"] = False
    _expect_setup_error(mdata, {"rna": empty}, r"\['multiome_s1d2'\] have 'rna' cells")
    with pytest.raises(ValueError, match="pass `batch_key`"):
        mosaicvi.MosaicVI.setup_mudata(mdata, feature_masks={"rna": mask})


def test_masks_are_saved_and_loaded(parts, tmp_path, train_quick):
    mdata, mask = _mosaic(parts)
    # a batch left out of the mask measured every feature; the columns may come in any order
    partial = mask.drop(index="cite_s1d2")[mask.columns[::-1]]
    _setup(mdata, partial)
    model = mosaicvi.MosaicVI(mdata, **SMALL)
    train_quick(model, max_epochs=1)
    table = model.module._buffers[model.module.masked_modalities["rna"]]
    batches = list(model.adata_manager.get_state_registry("batch").categorical_mapping)
    assert table[batches.index("cite_s1d2")].all()
    np.testing.assert_array_equal(
        table[batches.index("multiome_s1d1")].numpy(), mask.loc["multiome_s1d1"].to_numpy()
    )
    model.save(tmp_path / "model", save_anndata=True)
    loaded = mosaicvi.MosaicVI.load(tmp_path / "model")
    torch.testing.assert_close(
        loaded.module._buffers[loaded.module.masked_modalities["rna"]], table
    )
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), atol=1e-6
    )
    # new data with some of the batches is set up with the saved masks
    some = mdata[mdata.obs["batch"].isin(["multiome_s1d1", "cite_s1d1"])].copy()
    np.testing.assert_allclose(
        loaded.get_latent_representation(some),
        model.get_latent_representation()[mdata.obs["batch"].isin(["multiome_s1d1", "cite_s1d1"])],
        atol=1e-5,
    )
    # unmeasured genes are imputed: decoded for every cell
    expression = model.get_normalized_expression(modality="rna")
    assert np.isfinite(expression.to_numpy()).all() and (expression.to_numpy() > 0).all()


def test_panel_dropout_shows_encoders_only_the_shared_features(parts):
    mdata, mask = _mosaic(parts)
    _setup(mdata, mask)
    with pytest.raises(ValueError, match="panel_dropout"):
        mosaicvi.MosaicVI(mdata, panel_dropout=1.0, **SMALL)
    model = mosaicvi.MosaicVI(mdata, panel_dropout=0.999, **SMALL)
    loader = model._make_data_loader(adata=mdata, batch_size=mdata.n_obs, shuffle=False)
    tensors = next(iter(loader))
    x = {"rna": tensors[modality_registry_key("rna")]}
    batch = tensors[REGISTRY_KEYS.BATCH_KEY]
    shared = torch.as_tensor(mask.all(axis=0).to_numpy())
    model.module.train()
    kept, seen, masks = model.module.measured_inputs(x, batch)
    assert (masks["rna"] == shared).float().mean() > 0.99  # nearly every cell: the intersection
    model.module.eval()
    kept_eval, seen_eval, masks_eval = model.module.measured_inputs(x, batch)
    assert seen_eval["rna"] is kept_eval["rna"]
    torch.testing.assert_close(masks_eval["rna"], model.module.feature_mask("rna", batch))


def test_every_fitting_path_ignores_unmeasured_counts(parts):
    """Importance-weighted bound and cross-modal term: unmeasured counts change nothing either."""
    clean, mask = _mosaic(parts)
    noisy, _ = _mosaic(parts, unmeasured_noise=2)
    _setup(clean, mask)
    _setup(noisy, mask)
    model = mosaicvi.MosaicVI(clean, cross_modal_weight=1.0, **SMALL)
    other = mosaicvi.MosaicVI(noisy, cross_modal_weight=1.0, **SMALL)
    other.module.load_state_dict(model.module.state_dict())
    losses = []
    for m, data in ((model, clean), (other, noisy)):
        m.module.eval()
        loader = m._make_data_loader(adata=data, batch_size=data.n_obs, shuffle=False)
        torch.manual_seed(0)
        with torch.no_grad():
            _, _, out = m.module(next(iter(loader)), loss_kwargs={"n_importance_samples": 3})
        losses.append(float(out.loss))
    assert np.isfinite(losses[0]) and losses[1] == pytest.approx(losses[0], rel=1e-6)


def test_unmeasured_features_are_decoded_into_the_batches_that_measured_them(parts, train_quick):
    mdata, mask = _mosaic(parts)
    _setup(mdata, mask)
    model = train_quick(mosaicvi.MosaicVI(mdata, **SMALL), max_epochs=2)
    own = model.get_normalized_expression(modality="rna", use_z_mean=True)
    cite_only = mask.columns[mask.loc["cite_s1d1"] & ~mask.loc["multiome_s1d1"]]
    multiome_cells = mdata.obs_names[mdata.obs["batch"].astype(str) == "multiome_s1d1"]
    cite_cells = mdata.obs_names[mdata.obs["batch"].astype(str) == "cite_s1d1"]
    into_cite = [
        model.get_normalized_expression(
            modality="rna",
            use_z_mean=True,
            transform_batch=b,
            indices=np.flatnonzero(mdata.obs_names.isin(multiome_cells)),
        )
        for b in ("cite_s1d1", "cite_s1d2")
    ]
    expected = (into_cite[0][cite_only] + into_cite[1][cite_only]) / 2
    np.testing.assert_allclose(own.loc[multiome_cells, cite_only], expected, rtol=1e-4)
    shared = mask.columns[mask.all()]
    # without the rule they would be decoded into the cell's own batch, which differs
    assert not np.allclose(own.loc[multiome_cells, shared], into_cite[0][shared])
    into_own = model.get_normalized_expression(
        modality="rna",
        use_z_mean=True,
        transform_batch="multiome_s1d1",
        indices=np.flatnonzero(mdata.obs_names.isin(multiome_cells)),
    )
    assert not np.allclose(into_own[cite_only], expected)
    assert own.loc[cite_cells].notna().all().all()
