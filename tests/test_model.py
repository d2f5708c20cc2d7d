"""Training and using MosaicVI on a small real SNARE-seq mosaic and on synthetic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch

from mosaicvi import MosaicVI
from mosaicvi.model._options import default_max_epochs
from mosaicvi.nn._sparse import to_dense

N_LATENT = 8
PRESENCE = "_mosaicvi_presence"


def small_model(data, **kwargs) -> MosaicVI:
    return MosaicVI(data, n_hidden=32, n_hidden_decoder=32, n_latent=N_LATENT, **kwargs)


@pytest.fixture(scope="module")
def trained(snareseq_small, train_quick):
    """A MosaicVI trained for 2 epochs on the SNARE-seq mosaic (shared by this module's tests)."""
    mdata = snareseq_small()
    MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type")
    model = small_model(mdata)
    train_quick(model, max_epochs=2)
    return model, mdata


# --------------------------------------------------------------------------------------------------
# Training on the real mosaic
# --------------------------------------------------------------------------------------------------


def test_history(trained):
    model, _ = trained
    elbo = model.history["elbo_train"].to_numpy(dtype=float).ravel()
    assert len(elbo) == 2
    assert np.isfinite(elbo).all()
    assert (elbo > 0).all()
    assert model.is_trained
    assert np.isfinite(model.history["discriminator_loss_train"].to_numpy(dtype=float)).all()


def test_modalities_and_summary(trained):
    model, mdata = trained
    assert model.modalities == {"rna": "rna", "atac": "atac"}
    assert {m: lik.name for m, lik in model.module.likelihoods.items()} == {
        "rna": "nb",
        "atac": "bernoulli",
    }
    assert model.summary_stats.n_batch == 12
    assert model.module.discriminator is not None
    presence = mdata.obsm[PRESENCE]
    assert presence.to_numpy().any(axis=1).all()
    assert int(presence.to_numpy().sum()) > mdata.n_obs  # some cells are paired


def test_inference_is_deterministic_after_training(trained):
    """After training the module is in eval mode: no dropout noise in latents or attention."""
    model, _ = trained
    assert not model.module.training
    np.testing.assert_array_equal(
        model.get_latent_representation(), model.get_latent_representation()
    )
    pd.testing.assert_frame_equal(model.get_attention_weights(), model.get_attention_weights())


def test_latent_and_neighbors(trained):
    model, mdata = trained
    mdata.obsm["X_mosaicvi"] = model.get_latent_representation()
    latent = mdata.obsm["X_mosaicvi"]
    assert latent.shape == (mdata.n_obs, N_LATENT)
    assert np.isfinite(latent).all()
    assert latent.std(0).min() > 0
    sc.pp.neighbors(mdata, use_rep="X_mosaicvi", n_neighbors=10)
    connectivities = mdata.obsp["connectivities"]
    assert connectivities.shape == (mdata.n_obs, mdata.n_obs)
    assert connectivities.nnz > 0


def test_latent_subset_matches_full(trained):
    model, mdata = trained
    full = model.get_latent_representation()
    indices = np.array([3, 10, 500, 900])
    subset = model.get_latent_representation(indices=indices, batch_size=2)
    np.testing.assert_allclose(subset, full[indices], rtol=1e-5, atol=1e-6)


def test_attention_weights(trained):
    model, mdata = trained
    weights = model.get_attention_weights()
    presence = mdata.obsm[PRESENCE]
    assert isinstance(weights, pd.DataFrame)
    assert list(weights.columns) == ["rna", "atac"]
    assert weights.index.equals(mdata.obs_names)
    np.testing.assert_allclose(weights.sum(1).to_numpy(), 1.0, rtol=1e-5)
    values, present = weights.to_numpy(), presence[list(weights.columns)].to_numpy(dtype=bool)
    assert (values[~present] == 0).all()
    assert (values[present] > 0).all()
    # Cells with one modality put all weight on it; paired cells split it.
    single = present.sum(1) == 1
    np.testing.assert_allclose(values[single][present[single]], 1.0)
    paired = present.all(1)
    assert paired.any()
    assert (values[paired] < 1).all()


def test_attention_weights_with_indices(trained):
    model, mdata = trained
    indices = [0, 5, 700]
    weights = model.get_attention_weights(indices=indices)
    assert weights.index.equals(mdata.obs_names[indices])
    full = model.get_attention_weights()
    np.testing.assert_allclose(
        weights.to_numpy(), full.iloc[indices].to_numpy(), rtol=1e-5, atol=1e-7
    )


def test_save_load_round_trip(trained, snareseq_small, tmp_path):
    model, mdata = trained
    latent = model.get_latent_representation()
    attention = model.get_attention_weights()
    model.save(tmp_path / "m", overwrite=True)

    fresh = snareseq_small()
    loaded = MosaicVI.load(tmp_path / "m", adata=fresh, accelerator="cpu")
    assert loaded.modalities == model.modalities
    assert fresh.obs_names.equals(mdata.obs_names)
    np.testing.assert_allclose(loaded.get_latent_representation(), latent, rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(loaded.get_attention_weights(), attention, rtol=1e-5, atol=1e-6)
    # The data-derived buffers (TF-IDF weights, library references) come from the saved model.
    for name, buffer in model.module.state_dict().items():
        torch.testing.assert_close(loaded.module.state_dict()[name].cpu(), buffer.cpu(), msg=name)


def test_query_latent_matches_training_latent(trained, snareseq_small):
    """A subset of cells set up anew (as a query) gets the same latent as in the full data."""
    model, mdata = trained
    full = pd.DataFrame(model.get_latent_representation(), index=mdata.obs_names)
    fresh = snareseq_small()
    query = fresh[fresh.obs_names[::7]].copy()
    assert query.mod["rna"].n_obs > 0 and query.mod["atac"].n_obs > 0
    MosaicVI.setup_mudata(query, batch_key="batch", labels_key="cell_type")
    latent = model.get_latent_representation(adata=query)
    assert latent.shape == (query.n_obs, N_LATENT)
    np.testing.assert_allclose(latent, full.loc[query.obs_names].to_numpy(), rtol=1e-5, atol=1e-5)


def test_elbo_and_reconstruction_error(trained):
    model, _ = trained
    elbo = float(model.get_elbo())
    assert np.isfinite(elbo)
    errors = model.get_reconstruction_error()
    assert set(errors) == {"rna", "atac"}
    assert all(np.isfinite(float(v)) for v in errors.values())


# --------------------------------------------------------------------------------------------------
# Presence masking in the module
# --------------------------------------------------------------------------------------------------


def _minibatch(model, mdata, indices):
    loader = model._make_data_loader(
        adata=mdata, indices=indices, batch_size=len(indices), shuffle=False
    )
    return next(iter(loader))


def _evaluate(module, tensors):
    """Deterministic outputs: q(z|x) mean, attention and per-cell reconstruction NLL at z = mean."""
    with torch.no_grad():
        inference = module.inference(**module._get_inference_input(tensors))
        generative = module.generative(
            z=inference["qzm"],
            batch_index=tensors["batch"],
            library=inference["library"],
            presence=inference["presence"],
        )
        losses = module.loss(tensors, inference, generative)
    return {
        "qzm": inference["qzm"],
        "attention": inference["attention"],
        **{f"rec_{m}": v for m, v in losses.reconstruction_loss.items()},
        "kl": losses.kl_local["kl_z"],
    }


def _sampled_forward(module, tensors):
    """``module(tensors, compute_loss=True)`` with a fixed seed for the z sample."""
    torch.manual_seed(123)
    with torch.no_grad():
        _, _, losses = module(tensors, compute_loss=True)
    return {**{f"rec_{m}": v for m, v in losses.reconstruction_loss.items()}, "loss": losses.loss}


@pytest.fixture(scope="module")
def masking_batch(trained):
    """A minibatch with RNA-only, ATAC-only and paired cells, plus which is which."""
    model, mdata = trained
    presence = mdata.obsm[PRESENCE][["rna", "atac"]].to_numpy(dtype=bool)
    rna_only = np.flatnonzero(presence[:, 0] & ~presence[:, 1])[:6]
    atac_only = np.flatnonzero(~presence[:, 0] & presence[:, 1])[:6]
    paired = np.flatnonzero(presence.all(1))[:6]
    indices = np.sort(np.concatenate([rna_only, atac_only, paired]))
    tensors = _minibatch(model, mdata, indices)
    return tensors, presence[indices]


def _densified(tensors):
    return {k: to_dense(v).clone() for k, v in tensors.items()}


def _assert_same(a: dict, b: dict, keys=None):
    for key in keys or a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-5, msg=key)


def test_minibatch_is_sparse_with_empty_absent_rows(trained, masking_batch):
    tensors, presence = masking_batch
    assert tensors["x_atac"].layout == torch.sparse_csr
    x_rna, x_atac = to_dense(tensors["x_rna"]), to_dense(tensors["x_atac"])
    assert (x_rna[~torch.as_tensor(presence[:, 0])] == 0).all()
    assert (x_atac[~torch.as_tensor(presence[:, 1])] == 0).all()
    np.testing.assert_array_equal(tensors["presence"].numpy().astype(bool), presence)


def test_sparse_and_dense_minibatches_agree(trained, masking_batch):
    model, _ = trained
    model.module.eval()
    tensors, _ = masking_batch
    _assert_same(_evaluate(model.module, tensors), _evaluate(model.module, _densified(tensors)))
    _assert_same(
        _sampled_forward(model.module, tensors),
        _sampled_forward(model.module, _densified(tensors)),
    )


def test_absent_modality_counts_are_ignored(trained, masking_batch):
    model, _ = trained
    module = model.module
    module.eval()
    tensors, presence = masking_batch
    baseline = _evaluate(module, tensors)
    baseline_sampled = _sampled_forward(module, tensors)

    changed = _densified(tensors)
    generator = torch.Generator().manual_seed(0)
    no_rna = torch.as_tensor(~presence[:, 0])
    no_atac = torch.as_tensor(~presence[:, 1])
    assert no_rna.any() and no_atac.any()
    changed["x_rna"][no_rna] = torch.poisson(
        torch.full((int(no_rna.sum()), changed["x_rna"].shape[1]), 3.0), generator=generator
    )
    changed["x_atac"][no_atac] = (
        torch.rand(int(no_atac.sum()), changed["x_atac"].shape[1], generator=generator) < 0.3
    ).float()
    after = _evaluate(module, changed)
    _assert_same(baseline, after)
    _assert_same(baseline_sampled, _sampled_forward(module, changed))
    # Reconstruction of a modality is exactly zero for the cells that lack it.
    assert (after["rec_rna"][no_rna] == 0).all()
    assert (after["rec_atac"][no_atac] == 0).all()


def test_minibatch_missing_a_modality_entirely(trained):
    """A minibatch in which no cell has ATAC (empty sparse ATAC block) still works."""
    model, mdata = trained
    model.module.eval()
    presence = mdata.obsm[PRESENCE][["rna", "atac"]].to_numpy(dtype=bool)
    rna_only = np.flatnonzero(presence[:, 0] & ~presence[:, 1])[:5]
    tensors = _minibatch(model, mdata, rna_only)
    assert tensors["x_atac"].layout == torch.sparse_csr
    assert tensors["x_atac"].values().numel() == 0
    out = _evaluate(model.module, tensors)
    assert (out["rec_atac"] == 0).all()
    assert (out["rec_rna"] > 0).all()
    torch.testing.assert_close(out["attention"][:, 0], torch.ones(len(rna_only)))
    sampled = _sampled_forward(model.module, tensors)
    assert torch.isfinite(sampled["loss"])


def test_absent_modalities_masked_in_training_mode(trained, masking_batch):
    """Also in training mode (dropout, modality drop-out) absent modalities get no weight."""
    model, _ = trained
    tensors, presence = masking_batch
    model.module.train()
    try:
        for seed in range(5):
            torch.manual_seed(seed)
            with torch.no_grad():
                inference = model.module.inference(**model.module._get_inference_input(tensors))
            attention = inference["attention"]
            assert (attention[~torch.as_tensor(presence)] == 0).all()
            torch.testing.assert_close(attention.sum(1), torch.ones(len(presence)))
            assert torch.isfinite(inference["qzm"]).all()
    finally:
        model.module.eval()


@pytest.mark.parametrize("modality", ["rna", "atac"])
def test_present_modality_counts_matter(trained, masking_batch, modality):
    model, _ = trained
    module = model.module
    module.eval()
    tensors, presence = masking_batch
    column = ["rna", "atac"].index(modality)
    has = torch.as_tensor(presence[:, column])
    baseline = _evaluate(module, tensors)

    changed = _densified(tensors)
    key = f"x_{modality}"
    generator = torch.Generator().manual_seed(1)
    noise = torch.rand(int(has.sum()), changed[key].shape[1], generator=generator) < 0.3
    changed[key][has] = changed[key][has] + noise.float() * 2
    after = _evaluate(module, changed)
    # Cells that have the modality: their code and reconstruction change ...
    assert not torch.allclose(after["qzm"][has], baseline["qzm"][has])
    assert not torch.allclose(after[f"rec_{modality}"][has], baseline[f"rec_{modality}"][has])
    # ... cells that lack it are untouched.
    torch.testing.assert_close(after["qzm"][~has], baseline["qzm"][~has])


def test_kl_and_reconstruction_are_per_cell(trained, masking_batch):
    model, _ = trained
    model.module.eval()
    tensors, presence = masking_batch
    out = _evaluate(model.module, tensors)
    n = presence.shape[0]
    for key in ["rec_rna", "rec_atac", "kl"]:
        assert out[key].shape == (n,)
        assert torch.isfinite(out[key]).all()
    assert (out["rec_rna"][torch.as_tensor(presence[:, 0])] > 0).all()
    assert (out["rec_atac"][torch.as_tensor(presence[:, 1])] > 0).all()


# --------------------------------------------------------------------------------------------------
# Options, on the small synthetic mosaic
# --------------------------------------------------------------------------------------------------


def test_zinb_likelihood_trains(synthetic_mosaic, train_quick, tmp_path):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata, likelihoods={"rna": "zinb"})
    assert {m: lik.name for m, lik in model.module.likelihoods.items()} == {
        "rna": "zinb",
        "atac": "bernoulli",
        "adt": "nb",
    }
    assert hasattr(model.module.decoders["rna"], "zi_logits")
    train_quick(model, max_epochs=2)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
    latent = model.get_latent_representation()
    assert latent.shape == (mdata.n_obs, N_LATENT)
    assert np.isfinite(latent).all()
    model.save(tmp_path / "zinb")
    loaded = MosaicVI.load(tmp_path / "zinb", adata=mdata, accelerator="cpu")
    assert loaded.module.likelihoods["rna"].name == "zinb"
    np.testing.assert_allclose(loaded.get_latent_representation(), latent, rtol=1e-5, atol=1e-6)


def test_training_minibatches_stay_sparse(synthetic_mosaic, train_quick, monkeypatch):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata)
    layouts = []
    original = model.module._get_inference_input

    def spy(tensors, *args, **kwargs):
        layouts.append({m: tensors[f"x_{m}"].layout for m in ["rna", "atac", "adt"]})
        return original(tensors, *args, **kwargs)

    monkeypatch.setattr(model.module, "_get_inference_input", spy)
    train_quick(model, max_epochs=1)
    assert layouts
    assert all(layout == torch.sparse_csr for seen in layouts for layout in seen.values())


def test_shallow_networks_train(synthetic_mosaic, train_quick):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata, n_layers_encoder=1, n_layers_decoder=0, dropout_rate=0.0)
    train_quick(model, max_epochs=1)
    assert np.isfinite(model.get_latent_representation()).all()


def test_train_with_validation_and_early_stopping(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata)
    model.train(max_epochs=2, batch_size=128, accelerator="cpu", enable_progress_bar=False)
    assert len(model.history["elbo_train"]) == 2
    validation = model.history["elbo_validation"].to_numpy(dtype=float)
    assert len(validation) == 2
    assert np.isfinite(validation).all()


def test_default_max_epochs():
    assert default_max_epochs(100) == 400
    assert default_max_epochs(10_000) == 120
    assert default_max_epochs(30_000) == 40
    assert default_max_epochs(10_000_000) == 20


def test_invalid_likelihoods_raise(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    with pytest.raises(ValueError, match="not a modality"):
        small_model(mdata, likelihoods={"protein": "nb"})
    with pytest.raises(ValueError, match="poisson"):  # the message lists the known ones
        small_model(mdata, likelihoods={"rna": "gamma"})


def test_input_transforms_choice(snareseq_small):
    mdata = snareseq_small()
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    n_peaks = mdata["atac"].n_vars
    default = small_model(mdata, n_lsi_components=7).module.encoders["atac"]
    assert default.input_layer.weight.shape[0] == n_peaks
    assert default.lsi_layer.in_features == 7
    lsi = small_model(mdata, n_lsi_components=7, input_transforms={"atac": "lsi"})
    assert lsi.module.encoders["atac"].input_layer.weight.shape[0] == 7
    tfidf = small_model(mdata, input_transforms={"atac": "tfidf"}).module.encoders["atac"]
    assert tfidf.input_layer.weight.shape[0] == n_peaks
    assert tfidf.lsi_layer is None
    with pytest.raises(ValueError, match="not a modality"):
        small_model(mdata, input_transforms={"protein": "clr"})
    with pytest.raises(ValueError, match="zscore"):
        small_model(mdata, input_transforms={"rna": "zscore"})


def test_decoder_bias_starts_at_average_profile(snareseq_small):
    """Before training, decoding z = 0 gives each peak its average accessibility."""
    mdata = snareseq_small()
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata)
    atac = mdata["atac"].X
    fraction = np.asarray((atac > 0).mean(0)).ravel()
    bias = model.module.decoders["atac"].batch_bias.detach()
    probability = torch.sigmoid(bias).numpy()
    assert np.allclose(probability, fraction[None, :], atol=0.01)


def test_single_batch_trains_without_discriminator(synthetic_mosaic, train_quick):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata)
    model = small_model(mdata)
    assert model.summary_stats.n_batch == 1
    assert model.module.discriminator is None
    train_quick(model, max_epochs=2)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
    assert "discriminator_loss_train" not in model.history
    latent = model.get_latent_representation()
    assert latent.shape == (mdata.n_obs, N_LATENT)
    assert np.isfinite(latent).all()


def test_batch_discriminator_can_be_disabled(synthetic_mosaic):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata, batch_discriminator=False)
    assert model.module.discriminator is None


def test_categorical_covariates_train(synthetic_mosaic, train_quick):
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch", categorical_covariate_keys=["cell_type"])
    assert "cell_type" in mdata.obs.columns
    model = small_model(mdata)
    assert model.module.decoders["rna"].n_cats_per_cov == [3]
    train_quick(model, max_epochs=1)
    assert np.isfinite(model.get_latent_representation()).all()


def test_zero_library_cell_is_finite(synthetic_mosaic, train_quick):
    """A measured cell with an all-zero RNA row gets a finite code and loss."""
    mdata = synthetic_mosaic
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = small_model(mdata)
    train_quick(model, max_epochs=1)
    model.module.eval()
    index = mdata.obs_names.get_loc("b1_cell0")
    tensors = _minibatch(model, mdata, [index, index + 1])
    assert to_dense(tensors["x_rna"])[0].sum() == 0
    out = _evaluate(model.module, tensors)
    for value in out.values():
        assert torch.isfinite(value).all()
    np.testing.assert_allclose(model.get_attention_weights(indices=[index])["rna"].to_numpy(), 1.0)
