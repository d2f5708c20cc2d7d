"""Importance-weighted training (IWAE / DReG) and the marginal log-likelihood."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mosaicvi import MosaicVI
from mosaicvi.nn import FUSIONS

SMALL = {"n_hidden": 32, "n_hidden_decoder": 32, "n_latent": 4}


@pytest.fixture
def setup_mosaic(synthetic_mosaic):
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    return synthetic_mosaic


def whole_batch(model: MosaicVI, step: int = 1) -> dict:
    """Every ``step``-th cell of the model's data as one minibatch (sparse, as in training)."""
    indices = np.arange(0, model.adata.n_obs, step)
    loader = model._make_data_loader(adata=model.adata, indices=indices, batch_size=len(indices))
    return next(iter(loader))


def bounds(module, tensors, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ELBO, importance-weighted bound with ``n_samples``) per cell, from one forward pass."""
    with torch.no_grad():
        inference, generative, losses = module(tensors)
        elbo = -sum(losses.reconstruction_loss.values()) - sum(losses.kl_local.values())
        bound = -module.importance_weighted_loss(tensors, inference, generative, n_samples)
    return elbo, bound


@pytest.mark.parametrize("fusion", ["moe", "attention"])
def test_bound_lies_above_the_elbo_and_tightens_with_samples(setup_mosaic, fusion):
    model = MosaicVI(setup_mosaic, fusion=fusion, **SMALL)
    module = model.module.eval()
    tensors = whole_batch(model)
    elbos, one, many = [], [], []
    for seed in range(10):
        torch.manual_seed(seed)
        elbo, bound_1 = bounds(module, tensors, 1)
        _, bound_8 = bounds(module, tensors, 8)
        elbos.append(elbo.mean())
        one.append(bound_1.mean())
        many.append(bound_8.mean())
    elbos, one, many = (torch.stack(v) for v in (elbos, one, many))
    assert torch.isfinite(many).all()

    def standard_error(gap):
        return gap.std() / math.sqrt(len(gap))

    # Averages over 10 draws x 400 cells. More samples: a tighter bound, by > 4 standard errors.
    assert (many - one).mean() > 4 * standard_error(many - one)
    assert (many - elbos).mean() > 4 * standard_error(many - elbos)
    if fusion == "moe":
        # One draw per expert already beats the stratified ELBO (the average is inside the log).
        assert (one - elbos).mean() > 4 * standard_error(one - elbos)
    else:
        # One Gaussian: a single importance sample is an unbiased estimate of the same ELBO.
        assert (one - elbos).mean().abs() < 4 * standard_error(one - elbos) + 1e-3


@pytest.mark.parametrize("fusion", FUSIONS)
def test_loss_with_importance_samples_differs_from_the_elbo_loss(setup_mosaic, fusion):
    model = MosaicVI(setup_mosaic, fusion=fusion, **SMALL)
    module = model.module.eval()
    tensors = whole_batch(model)
    with torch.no_grad():
        inference = module.inference(**module._get_inference_input(tensors))
        generative = module.generative(**module._get_generative_input(tensors, inference))
        torch.manual_seed(0)
        elbo = module.loss(tensors, inference, generative)
        torch.manual_seed(0)
        weighted = module.loss(tensors, inference, generative, n_importance_samples=5)
    # Same ELBO logged; a different loss (for mixtures clearly smaller even from one draw: the
    # average over experts moves inside the log; the ordering in expectation is tested above).
    torch.testing.assert_close(
        sum(elbo.reconstruction_loss.values()), sum(weighted.reconstruction_loss.values())
    )
    assert abs(float(weighted.loss - elbo.loss)) > 1e-3
    if fusion in ("moe", "mopoe"):
        assert weighted.loss < elbo.loss - 1.0


def gradients(module, tensors, gradient: str, seed: int = 0) -> dict[str, torch.Tensor]:
    module.zero_grad()
    torch.manual_seed(seed)
    _, _, losses = module(
        tensors, loss_kwargs={"n_importance_samples": 4, "importance_gradient": gradient}
    )
    losses.loss.backward()
    return {
        name: p.grad.clone()
        for name, p in module.named_parameters()
        if p.grad is not None and name.startswith(("encoders", "fusion", "decoders"))
    }


def test_dreg_reaches_the_encoder_and_differs_from_iwae_only_there(setup_mosaic):
    model = MosaicVI(setup_mosaic, fusion="moe", batch_discriminator=False, **SMALL)
    module = model.module.eval()  # eval: no dropout, so both estimators see the same draws
    tensors = whole_batch(model)
    dreg = gradients(module, tensors, "dreg")
    iwae = gradients(module, tensors, "iwae")
    encoder = [n for n in dreg if n.startswith(("encoders", "fusion"))]
    decoder = [n for n in dreg if n.startswith("decoders")]
    assert encoder and decoder and set(dreg) == set(iwae)
    for name in dreg:
        assert torch.isfinite(dreg[name]).all(), name
    assert all(dreg[n].abs().sum() > 0 for n in encoder)
    # The decoder gets the IWAE gradient either way; the encoder gets DReG's own.
    for name in decoder:
        torch.testing.assert_close(dreg[name], iwae[name], rtol=1e-4, atol=1e-5)
    assert any(not torch.allclose(dreg[n], iwae[n], rtol=1e-2, atol=1e-4) for n in encoder)


def test_dreg_and_iwae_agree_on_average_for_a_gaussian_posterior(setup_mosaic):
    """For one Gaussian component DReG is unbiased: its mean gradient is IWAE's, within noise.

    Dropping DReG's second weighting of the samples' gradient (the hook) moves the mean by ~6
    standard errors here, so this would fail.
    """
    model = MosaicVI(setup_mosaic, fusion="poe", batch_discriminator=False, **SMALL)
    module = model.module.eval()
    tensors = whole_batch(model, step=4)  # 100 cells of every batch
    name = "fusion.experts.loc.rna.weight"
    n_draws = 30
    draws = {
        g: torch.stack([gradients(module, tensors, g, seed)[name] for seed in range(n_draws)])
        for g in ("dreg", "iwae")
    }
    mean = {g: d.mean(0) for g, d in draws.items()}
    standard_error = {g: d.std(0) / math.sqrt(n_draws) for g, d in draws.items()}
    noise = torch.sqrt(
        standard_error["dreg"].square().sum() + standard_error["iwae"].square().sum()
    )
    assert (mean["dreg"] - mean["iwae"]).norm() < 2 * noise
    assert mean["iwae"].norm() > 5 * noise  # the gradient itself is well resolved


def test_train_with_importance_samples(setup_mosaic, train_quick, monkeypatch):
    model = MosaicVI(setup_mosaic, fusion="moe", **SMALL)
    calls = []
    original = model.module.importance_weighted_loss

    def spy(*args, **kwargs):
        calls.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(model.module, "importance_weighted_loss", spy)
    train_quick(model, max_epochs=2, n_importance_samples=3)
    assert calls and set(calls) == {3}
    for key in ("train_loss", "elbo_train"):
        assert np.isfinite(model.history[key].to_numpy(dtype=float)).all(), key
    # The loss trained on is the bound, not the ELBO (which is still logged).
    assert not np.allclose(
        model.history["train_loss"].to_numpy(float), model.history["elbo_train"].to_numpy(float)
    )


def test_modality_priors_keep_their_term_with_importance_samples(setup_mosaic):
    model = MosaicVI(setup_mosaic, fusion="moe", prior="modality", **SMALL)
    module = model.module.train()
    _, _, losses = module(whole_batch(model), loss_kwargs={"n_importance_samples": 3})
    losses.loss.backward()
    grads = [p.grad for p in module.modality_priors.parameters()]
    assert torch.isfinite(losses.loss)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_importance_samples_bad_input(setup_mosaic):
    model = MosaicVI(setup_mosaic, fusion="moe", **SMALL)
    with pytest.raises(ValueError, match="n_importance_samples"):
        model.train(max_epochs=1, n_importance_samples=0)
    with pytest.raises(ValueError, match="importance_gradient"):
        model.train(
            max_epochs=1, n_importance_samples=2, plan_kwargs={"importance_gradient": "vimco"}
        )
    mixture = MosaicVI(setup_mosaic, fusion="moe", prior="mixture", **SMALL)
    with pytest.raises(ValueError, match="prior='normal'"):
        mixture.train(max_epochs=1, n_importance_samples=2)


def test_only_present_modalities_are_scored(setup_mosaic):
    model = MosaicVI(setup_mosaic, fusion="moe", **SMALL)
    module = model.module.eval()
    tensors = whole_batch(model)
    inference = module.inference(**module._get_inference_input(tensors))
    presence = inference["presence"]
    cells = torch.arange(presence.shape[0])
    z = torch.randn(len(cells), SMALL["n_latent"])
    with torch.no_grad():
        before = module.present_log_likelihood(tensors, presence, z, cells, None)
        module.decoders["atac"].batch_bias += 1.0
        after = module.present_log_likelihood(tensors, presence, z, cells, None)
    atac = presence[:, module.modality_names.index("atac")]
    torch.testing.assert_close(before[~atac], after[~atac])
    assert (before[atac] != after[atac]).all()


@pytest.mark.parametrize("fusion", ["moe", "attention"])
def test_marginal_ll_per_cell(setup_mosaic, train_quick, fusion):
    model = MosaicVI(setup_mosaic, fusion=fusion, **SMALL)
    untrained = model.get_marginal_ll(n_mc_samples=20)
    assert model.module.training  # the mode is restored (Lightning keeps it for training)
    assert untrained.shape == (setup_mosaic.n_obs,) and np.isfinite(untrained).all()
    train_quick(model, max_epochs=3)
    trained = model.get_marginal_ll(n_mc_samples=20)
    assert np.isfinite(trained).all()
    assert trained.mean() > untrained.mean() + 1.0
    elbo = model.get_elbo(return_mean=False).numpy()
    assert trained.mean() > elbo.mean()
    subset = model.get_marginal_ll(indices=[0, 5, 7], n_mc_samples=20)
    assert subset.shape == (3,)
    assert isinstance(model.get_marginal_ll(n_mc_samples=5, return_mean=True), float)
    with pytest.raises(ValueError, match="n_mc_samples"):
        model.get_marginal_ll(n_mc_samples=0)


def test_marginal_ll_with_the_mixture_prior(setup_mosaic):
    model = MosaicVI(setup_mosaic, fusion="moe", prior="mixture", **SMALL)
    values = model.get_marginal_ll(n_mc_samples=5)
    assert values.shape == (setup_mosaic.n_obs,) and np.isfinite(values).all()
