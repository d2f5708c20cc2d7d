"""Output discriminator and modality-specific priors (issue 9, items 1 and 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mosaicvi
from mosaicvi.nn import ModalityPriors, OutputDiscriminator, make_fusion, straight_through_sample
from mosaicvi.nn._likelihoods import get_likelihood
from mosaicvi.nn._output_discriminator import normalized_profile
from mosaicvi.nn._sparse import is_sparse

TINY = {"n_latent": 4, "n_hidden": 16, "n_hidden_decoder": 16}


def _model(mdata, **kwargs) -> mosaicvi.MosaicVI:
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    return mosaicvi.MosaicVI(mdata, **TINY, **kwargs)


def _minibatch_loss(model, **loss_kwargs):
    """Loss output of the module on the first 128 cells (training mode)."""
    loader = model._make_data_loader(model.adata, indices=np.arange(128), batch_size=128)
    tensors = next(iter(loader))
    model.module.train()
    _, _, output = model.module(tensors, loss_kwargs=loss_kwargs)
    return output


def _grad_norm(module: torch.nn.Module) -> float:
    grads = [p.grad.abs().sum() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(grads).sum()) if grads else 0.0


def test_straight_through_sample_is_a_draw_with_the_mean_gradient():
    torch.manual_seed(0)
    mean = torch.full((200, 5), 3.0, requires_grad=True)
    params = {"mean": mean, "theta": torch.full((200, 5), 10.0), "logits": mean}
    draw = straight_through_sample(params, get_likelihood("nb"))
    values = draw.detach()
    assert torch.equal(values, values.round())  # counts, not means
    assert values.var() > 0.5
    assert abs(float(values.mean()) - 3.0) < 0.3
    draw.sum().backward()
    assert torch.equal(mean.grad, torch.ones_like(mean))


def test_normalized_profile_treats_sparse_and_dense_alike():
    dense = torch.tensor([[0.0, 2.0, 6.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    sparse = dense.to_sparse_csr()
    for name in ("nb", "bernoulli"):
        likelihood = get_likelihood(name)
        from_dense = normalized_profile(dense, likelihood, 10.0)
        from_sparse = normalized_profile(sparse, likelihood, 10.0)
        assert is_sparse(from_sparse)
        torch.testing.assert_close(from_sparse.to_dense(), from_dense)
    torch.testing.assert_close(
        normalized_profile(dense, get_likelihood("nb"), 8.0)[0],
        torch.log1p(torch.tensor([0.0, 2.0, 6.0])),
    )


def test_output_discriminator_loss_present_and_every_part_gets_its_gradient(synthetic_mosaic):
    model = _model(synthetic_mosaic, output_discriminator_kwargs={}, batch_discriminator=False)
    module = model.module
    assert set(module.output_discriminators) == set(model.modalities)
    output = _minibatch_loss(model, output_adversarial_scale=1.0)
    d_loss = output.extra_metrics["output_discriminator_loss"]
    g_loss = output.extra_metrics["output_generator_loss"]
    assert float(d_loss) > 0 and float(g_loss) > 0
    # The discriminators' cross-entropy trains them (and only them) ...
    module.zero_grad()
    adversarial = module.output_adversarial_losses(*_tensors_and_outputs(model))
    adversarial["output_discriminator_loss"].backward()
    for m in model.modalities:
        assert _grad_norm(module.output_discriminators[m]) > 0, m
        assert _grad_norm(module.decoders[m]) == 0, m
    # ... while the generator term trains the decoders (and encoders), never the discriminators.
    module.zero_grad()
    adversarial = module.output_adversarial_losses(*_tensors_and_outputs(model))
    adversarial["output_generator_loss"].backward()
    for m in model.modalities:
        assert _grad_norm(module.output_discriminators[m]) == 0, m
        assert _grad_norm(module.decoders[m]) > 0, m
    assert _grad_norm(module.encoders) > 0


def _tensors_and_outputs(model):
    loader = model._make_data_loader(model.adata, indices=np.arange(128), batch_size=128)
    tensors = next(iter(loader))
    module = model.module
    inference = module.inference(**module._get_inference_input(tensors))
    generative = module.generative(**module._get_generative_input(tensors, inference))
    return tensors, inference, generative


def test_output_discriminator_sees_cross_modal_decodings(synthetic_mosaic):
    """Paired cells add decoded rows beyond the reconstructions (cross-modal imputations)."""
    model = _model(synthetic_mosaic, output_discriminator_kwargs={})
    tensors, inference, generative = _tensors_and_outputs(model)
    decodings = list(model.module.cross_modal_decodings(tensors, inference, generative))
    assert decodings, "the synthetic mosaic has paired cells"
    present = inference["presence"]
    for m, target, _ in decodings:
        i = model.module.modality_names.index(m)
        assert present[target, i].all()
        assert (present[target].sum(1) > 1).all()


def test_output_discriminator_trains_with_own_optimiser_and_warm_up(synthetic_mosaic, train_quick):
    model = _model(
        synthetic_mosaic, output_discriminator_kwargs={"n_epochs_warmup": 2, "lr_factor": 0.25}
    )
    before = {k: v.clone() for k, v in model.module.output_discriminators.state_dict().items()}
    train_quick(
        model,
        max_epochs=3,
        batch_size=64,
    )
    for key in ("output_discriminator_loss_train", "output_generator_loss_train", "elbo_train"):
        values = model.history[key].to_numpy(dtype=float)
        assert np.isfinite(values).all(), key
        assert (values > 0).all(), key
    after = model.module.output_discriminators.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before), (
        "discriminators never stepped"
    )
    # The plan is not kept after training: build one to check its optimisers.
    plan = mosaicvi.train.MosaicTrainingPlan(
        model.module, lr=1e-3, output_discriminator_lr_factor=0.25
    )
    config = plan.configure_optimizers()
    main_ids = {id(p) for group in config["optimizer"].param_groups for p in group["params"]}
    discriminator_ids = {id(p) for p in model.module.output_discriminators.parameters()}
    assert not main_ids & discriminator_ids
    (group,) = plan.output_discriminator_optimizer.param_groups
    assert {id(p) for p in group["params"]} == discriminator_ids
    assert group["lr"] == pytest.approx(2.5e-4)
    assert all(p.requires_grad for p in model.module.output_discriminators.parameters())


def test_generator_warm_up_ramps_from_zero(synthetic_mosaic):
    model = _model(synthetic_mosaic, output_discriminator_kwargs={})
    plan = mosaicvi.train.MosaicTrainingPlan(
        model.module, n_epochs_kl_warmup=4, n_epochs_output_adversarial_warmup=None
    )
    assert plan.n_epochs_output_adversarial_warmup == 4
    assert plan.current_output_adversarial_scale == 0.0  # epoch 0
    without = _minibatch_loss(model, output_adversarial_scale=0.0)
    torch.manual_seed(0)
    a = _minibatch_loss(model, output_adversarial_scale=0.0)
    torch.manual_seed(0)
    b = _minibatch_loss(model, output_adversarial_scale=1.0)
    assert float(without.extra_metrics["output_generator_loss"]) > 0  # logged even when off
    expected = float(a.loss.detach()) + float(a.extra_metrics["output_generator_loss"])
    assert float(b.loss.detach()) == pytest.approx(expected, rel=1e-4)


def test_modality_prior_kl_present_and_its_priors_get_gradient(synthetic_mosaic):
    model = _model(synthetic_mosaic, prior="modality", n_clusters=4)
    module = model.module
    assert isinstance(module.modality_priors, ModalityPriors)
    assert set(module.modality_priors.priors) == set(model.modalities)
    output = _minibatch_loss(model)
    assert set(output.kl_local) == {"kl_z", "kl_modality"}
    kl_modality = output.kl_local["kl_modality"]
    assert torch.isfinite(kl_modality).all()
    assert float(kl_modality.detach().abs().sum()) > 0
    module.zero_grad()
    output.loss.backward()
    for m in model.modalities:
        assert _grad_norm(module.modality_priors.priors[m]) > 0, m


def test_modality_prior_uses_each_modalitys_own_posterior():
    """A cell's KL is the sum over the modalities it measured, each with its own prior."""
    torch.manual_seed(0)
    fusion = make_fusion("poe", ["rna", "atac"], n_input=8, n_latent=3)
    priors = ModalityPriors(["rna", "atac"], n_latent=3, n_clusters=2)
    embeddings = torch.randn(3, 2, 8)
    presence = torch.tensor([[True, False], [False, True], [True, True]])
    torch.manual_seed(1)
    kl = priors.kl_terms(fusion, embeddings, presence)["kl_modality"].detach()
    torch.manual_seed(1)
    rna_only = priors.kl_terms(fusion, embeddings, presence & torch.tensor([True, False]))
    rna_only = rna_only["kl_modality"].detach()
    assert float(rna_only[1]) == 0  # the ATAC-only cell has no RNA view
    assert float(kl[0]) == pytest.approx(float(rna_only[0]), rel=1e-5)
    assert float(kl[2]) != pytest.approx(float(rna_only[2]))


@pytest.mark.parametrize(
    "options", [{"output_discriminator_kwargs": {}}, {"prior": "modality", "n_clusters": 3}]
)
def test_options_train_and_survive_save_load(options, synthetic_mosaic, train_quick, tmp_path):
    model = train_quick(_model(synthetic_mosaic, **options), max_epochs=2, batch_size=64)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
    model.save(tmp_path / "model")
    loaded = mosaicvi.MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic, accelerator="cpu")
    for key, value in options.items():
        assert loaded.init_params_["non_kwargs"][key] == value
    if "output_discriminator_kwargs" in options:
        assert loaded.module.output_discriminators is not None
    else:
        assert loaded.module.modality_priors is not None
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-6
    )


def test_output_discriminator_is_off_by_default(synthetic_mosaic):
    model = _model(synthetic_mosaic)
    assert model.module.output_discriminators is None
    assert model.module.modality_priors is None
    output = _minibatch_loss(model)
    assert "output_discriminator_loss" not in output.extra_metrics
    assert "kl_modality" not in output.kl_local


def test_output_discriminator_scores_dense_and_sparse_rows():
    discriminator = OutputDiscriminator(n_features=6, n_hidden=8)
    discriminator.eval()
    x = torch.tensor([[0.0, 1.0, 0.0, 2.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(discriminator(x), discriminator(x.to_sparse_csr()))


def test_discriminator_optimiser_state_goes_into_checkpoints(synthetic_mosaic):
    model = _model(synthetic_mosaic, output_discriminator_kwargs={})
    plan = mosaicvi.train.MosaicTrainingPlan(model.module, lr=1e-3)
    plan.configure_optimizers()
    discriminators = model.module.output_discriminators
    for p in discriminators.parameters():
        p.grad = torch.ones_like(p)
    plan.output_discriminator_optimizer.step()
    checkpoint = {}
    plan.on_save_checkpoint(checkpoint)
    resumed = mosaicvi.train.MosaicTrainingPlan(model.module, lr=1e-3)
    resumed.on_load_checkpoint(checkpoint)
    resumed.configure_optimizers()
    state = resumed.output_discriminator_optimizer.state_dict()["state"]
    assert len(state) == len(list(discriminators.parameters()))
    assert all(int(s["step"]) == 1 for s in state.values())
