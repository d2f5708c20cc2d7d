"""mmAAVI's mixture prior (``MosaicVI(prior="mixture")``) and ``get_cluster_probabilities``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mosaicvi import MosaicVI
from mosaicvi.nn import MixturePrior, make_fusion

N_LATENT = 4


@pytest.mark.parametrize("fusion", ["attention", "mopoe"])
def test_kl_terms_finite_and_labelled_cells_have_no_cluster_kl(fusion):
    torch.manual_seed(0)
    presence = torch.tensor([[True, True], [True, False], [False, True], [True, True]])
    posterior = make_fusion(fusion, ["rna", "atac"], 6, N_LATENT)(torch.randn(4, 2, 6), presence)
    prior = MixturePrior(N_LATENT, n_clusters=3)
    z, cells, weight = posterior.stratified_sample()
    labels = torch.tensor([-1, 2, -1, 0])
    terms = prior.kl_terms(posterior, z, cells, weight, labels)
    assert set(terms) == {"kl_z", "kl_u", "kl_c"}
    for name, value in terms.items():
        assert value.shape == (4,), name
        assert torch.isfinite(value).all(), name
    assert (terms["kl_u"] >= 0).all()
    # KL(q(c|z) || uniform) is in [0, log K] for unlabelled cells, and dropped for labelled ones.
    assert (terms["kl_c"][[0, 2]] >= 0).all() and (terms["kl_c"][[0, 2]] <= np.log(3) + 1e-5).all()
    assert (terms["kl_c"][[1, 3]] == 0).all()
    sum(t.sum() for t in terms.values()).backward()
    for p in prior.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_labelled_cells_fix_the_cluster():
    """With c fixed to a label, p(z | c, u) depends on that label only, not on q(c | z)."""
    torch.manual_seed(0)
    posterior = make_fusion("poe", ["rna"], 6, N_LATENT)(
        torch.randn(2, 1, 6), torch.ones(2, 1, dtype=torch.bool)
    )
    prior = MixturePrior(N_LATENT, n_clusters=3)
    z, cells, weight = posterior.stratified_sample()
    labels = torch.tensor([1, 1])
    torch.manual_seed(1)
    before = prior.kl_terms(posterior, z, cells, weight, labels)
    with torch.no_grad():  # change q(c | z) completely: labelled cells must not notice
        prior.cluster_classifier.output.bias.add_(torch.tensor([50.0, -50.0, 0.0]))
    torch.manual_seed(1)
    after = prior.kl_terms(posterior, z, cells, weight, labels)
    for name in before:
        torch.testing.assert_close(before[name], after[name])


def test_mixture_prior_needs_two_clusters():
    with pytest.raises(ValueError, match="n_clusters"):
        MixturePrior(N_LATENT, n_clusters=1)


@pytest.mark.parametrize("fusion", ["attention", "moe"])
def test_mixture_model_trains_and_gives_cluster_probabilities(
    fusion, synthetic_mosaic, train_quick
):
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = MosaicVI(
        synthetic_mosaic,
        n_hidden=16,
        n_hidden_decoder=16,
        n_latent=N_LATENT,
        fusion=fusion,
        prior="mixture",
        n_clusters=5,
    )
    train_quick(model, max_epochs=2, batch_size=64)
    for key in ("kl_z_train", "kl_u_train", "kl_c_train", "elbo_train"):
        values = model.history[key].to_numpy(dtype=float)
        assert np.isfinite(values).all(), key
    probabilities = model.get_cluster_probabilities()
    assert probabilities.shape == (synthetic_mosaic.n_obs, 5)
    assert list(probabilities.columns) == [f"cluster_{k}" for k in range(5)]
    assert probabilities.index.equals(synthetic_mosaic.obs_names)
    np.testing.assert_allclose(probabilities.sum(1), 1.0, rtol=1e-5)
    assert (probabilities.to_numpy() >= 0).all()
    # Hard clusters in one line.
    synthetic_mosaic.obs["cluster"] = probabilities.idxmax(axis=1)
    assert synthetic_mosaic.obs["cluster"].notna().all()
    with pytest.raises(ValueError, match="predict"):
        model.predict()


def test_cluster_probabilities_need_the_mixture_prior(synthetic_mosaic, train_quick):
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = MosaicVI(synthetic_mosaic, n_hidden=16, n_hidden_decoder=16, n_latent=N_LATENT)
    train_quick(model, max_epochs=1)
    with pytest.raises(ValueError, match="prior='mixture'"):
        model.get_cluster_probabilities()


def test_unknown_prior(synthetic_mosaic):
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.raises(ValueError, match="prior"):
        MosaicVI(synthetic_mosaic, prior="vamp")
