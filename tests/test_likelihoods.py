"""Likelihood objects: NLL against torch / scvi-tools distributions, sampling, Poisson training."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scvi.distributions import NegativeBinomial

from mosaicvi import MosaicVI
from mosaicvi.nn import ModalityDecoder
from mosaicvi.nn._likelihoods import LIKELIHOODS, Likelihood, get_likelihood


def random_counts(n_rows: int = 9, n_cols: int = 13, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.full((n_rows, n_cols), 0.7), generator=generator)
    counts[0] = 0.0  # an empty row
    return counts


def decoded(name: str, n_rows: int = 9, n_cols: int = 13, n_batch: int = 2):
    decoder = ModalityDecoder(4, n_cols, n_batch, likelihood=name, n_hidden=8).eval()
    z = torch.randn(n_rows, 4)
    batch = torch.arange(n_rows) % n_batch
    with torch.no_grad():
        return decoder, decoder(z, batch, torch.full((n_rows,), 20.0))


def test_registry_names_every_likelihood_and_refuses_unknown_ones():
    assert {"nb", "zinb", "poisson", "bernoulli"} <= set(LIKELIHOODS)
    for name, cls in LIKELIHOODS.items():
        assert issubclass(cls, Likelihood) and get_likelihood(name).name == name
    with pytest.raises(ValueError, match="use one of"):
        get_likelihood("gamma")


def test_poisson_nll_equals_torch_poisson_on_dense_and_csr():
    torch.manual_seed(0)
    x = random_counts()
    rate = torch.rand(9, 13) * 3 + 0.01
    likelihood = get_likelihood("poisson")
    expected = -torch.distributions.Poisson(rate).log_prob(x).sum(-1)
    params = {"logits": rate.log(), "mean": rate}
    torch.testing.assert_close(likelihood.negative_log_likelihood(x, params), expected)
    torch.testing.assert_close(
        likelihood.negative_log_likelihood(x.to_sparse_csr(), params), expected
    )


def test_poisson_decoder_rate_sums_to_the_library():
    _, params = decoded("poisson")
    torch.testing.assert_close(params["mean"].sum(-1), torch.full((9,), 20.0))
    assert set(params) == {"logits", "mean"}  # no dispersion


@pytest.mark.parametrize("name", ["nb", "zinb"])
def test_negative_binomial_nll_matches_scvi_and_csr(name):
    decoder, params = decoded(name)
    x = random_counts()
    nll = decoder.negative_log_likelihood(x, params)
    torch.testing.assert_close(decoder.negative_log_likelihood(x.to_sparse_csr(), params), nll)
    if name == "nb":
        expected = -NegativeBinomial(mu=params["mean"], theta=params["theta"]).log_prob(x).sum(-1)
        torch.testing.assert_close(nll, expected)
    assert set(decoder.likelihood.batch_parameters) <= {n for n, _ in decoder.named_parameters()}


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_samples_are_counts_whose_average_approaches_the_mean(name):
    torch.manual_seed(0)
    _, params = decoded(name, n_rows=4)
    likelihood = get_likelihood(name)
    draws = torch.stack([likelihood.sample(params) for _ in range(400)])
    assert draws.shape == (400, 4, 13)
    assert torch.equal(draws, draws.round()) and (draws >= 0).all()
    if likelihood.binary:
        assert set(draws.unique().tolist()) <= {0.0, 1.0}
    mean = likelihood.mean(params)
    if name == "zinb":  # zero inflation lowers the average below the NB mean
        assert (draws.mean(0) <= mean * 1.2 + 0.1).all()
    else:
        torch.testing.assert_close(draws.mean(0), mean, atol=0.35, rtol=0.25)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_set_up_statistics_of_each_likelihood(name):
    counts = sp.csr_matrix(np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))
    likelihood = get_likelihood(name)
    expected_library = [2, 1, 2] if likelihood.binary else [3.0, 3.0, 2.0]
    np.testing.assert_array_equal(likelihood.cell_library(counts), expected_library)
    assert likelihood.library_reference(counts) == np.median(expected_library)
    assert likelihood.initial_bias(counts).shape == (3,)
    defaults = likelihood.differential_defaults("atac")
    assert defaults.change == ("difference" if likelihood.binary else "log-fold")


def test_poisson_trains_on_snareseq_atac_counts(snareseq_small, train_quick):
    mdata = snareseq_small()
    assert mdata["atac"].X.max() > 1  # fragment counts, not binarised peaks
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = MosaicVI(
        mdata, n_hidden=32, n_hidden_decoder=32, n_latent=8, likelihoods={"atac": "poisson"}
    )
    assert model.module.likelihoods["atac"].name == "poisson"
    train_quick(model, max_epochs=2)
    elbo = model.history["elbo_train"].to_numpy(dtype=float).ravel()
    assert np.isfinite(elbo).all() and elbo[-1] < elbo[0]
    imputed = model.get_normalized_expression(modality="atac", indices=range(50))
    assert (imputed.to_numpy() >= 0).all()
    # decoded at library 1 by default: a profile of proportions, as for RNA
    np.testing.assert_allclose(imputed.sum(1), 1.0, rtol=1e-4)
