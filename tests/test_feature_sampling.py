"""Closed-feature sampling of the Bernoulli reconstruction term: exactness where it must be,
unbiasedness otherwise, and that training uses it only while training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mosaicvi
from mosaicvi.module import _closed_feature_sampling as sampling
from mosaicvi.nn import ModalityDecoder
from mosaicvi.nn._feature_sampling import feature_capacity, sample_feature_columns
from mosaicvi.nn._sparse import row_nnz


def sparse_binary_counts(n_rows: int = 16, n_cols: int = 60, seed: int = 0) -> torch.Tensor:
    """Counts where most columns are closed in every row, as ATAC peaks in a minibatch."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.zeros(n_rows, n_cols)
    popular = torch.randperm(n_cols, generator=generator)[: n_cols // 4]
    mask = torch.rand(n_rows, len(popular), generator=generator) < 0.3
    x[:, popular] = mask.float() * torch.randint(1, 3, mask.shape, generator=generator).float()
    x[0] = 0  # an empty row (a cell without this modality)
    return x


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_sampled_columns_keep_every_open_feature(layout):
    x = sparse_binary_counts()
    data = x.to_sparse_csr() if layout == "csr" else x
    torch.manual_seed(0)
    columns, weight = sample_feature_columns(data, 0.25)
    is_open = (x > 0).any(0)
    assert torch.equal(columns, torch.sort(columns).values)
    assert is_open[is_open].numel() > 0
    assert set(torch.nonzero(is_open).flatten().tolist()) <= set(columns.tolist())
    assert len(columns) < x.shape[1]
    assert torch.all(weight[is_open[columns]] == 1.0)
    assert torch.allclose(weight[~is_open[columns]], torch.tensor(4.0))


def test_fraction_one_keeps_everything_and_bad_fraction_is_refused():
    x = sparse_binary_counts()
    columns, weight = sample_feature_columns(x, 1.0)
    assert torch.equal(columns, torch.arange(x.shape[1]))
    assert torch.all(weight == 1.0)
    with pytest.raises(ValueError, match="fraction"):
        sample_feature_columns(x, 0.0)


@pytest.mark.parametrize("graph_weight", [0.0, 0.5, 1.0])
def test_decoder_subset_logits_equal_the_full_decoders_columns(graph_weight):
    torch.manual_seed(0)
    x = sparse_binary_counts()
    decoder = ModalityDecoder(
        4, x.shape[1], n_batch=3, likelihood="bernoulli", n_hidden=8, graph_weight=graph_weight
    ).eval()
    z = torch.randn(x.shape[0], 4)
    batch = torch.arange(x.shape[0]) % 3
    embeddings = torch.randn(x.shape[1], 4) if graph_weight > 0 else None
    full = decoder(z, batch, row_nnz(x), feature_embeddings=embeddings)["logits"]
    columns = sample_feature_columns(x.to_sparse_csr(), 0.3)
    subset = decoder(z, batch, row_nnz(x), feature_embeddings=embeddings, columns=columns)
    torch.testing.assert_close(subset["logits"], full[:, columns[0]])


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_sampled_nll_is_an_unbiased_estimate_of_the_full_nll(layout):
    torch.manual_seed(0)
    x = sparse_binary_counts()
    data = x.to_sparse_csr() if layout == "csr" else x
    decoder = ModalityDecoder(4, x.shape[1], n_batch=1, likelihood="bernoulli", n_hidden=8).eval()
    z = torch.randn(x.shape[0], 4)
    batch = torch.zeros(x.shape[0], dtype=torch.long)
    with torch.no_grad():
        full = decoder.negative_log_likelihood(data, decoder(z, batch, row_nnz(x)))
        every = sample_feature_columns(data, 1.0)
        exact = decoder(z, batch, row_nnz(x), columns=every)
        torch.testing.assert_close(decoder.negative_log_likelihood(data, exact), full)
        estimates = []
        for _ in range(3000):
            params = decoder(z, batch, row_nnz(x), columns=sample_feature_columns(data, 0.2))
            estimates.append(decoder.negative_log_likelihood(data, params))
    estimates = torch.stack(estimates)
    assert not torch.allclose(estimates[0], full)  # a sample, not the full sum
    standard_error = estimates.std(0) / len(estimates) ** 0.5
    assert torch.all((estimates.mean(0) - full).abs() < 5 * standard_error + 1e-4)


def test_subset_decoding_is_refused_for_count_likelihoods():
    decoder = ModalityDecoder(4, 10, n_batch=1, likelihood="nb", n_hidden=8)
    columns = (torch.arange(5), torch.ones(5))
    with pytest.raises(ValueError, match="'nb' decoder cannot decode a subset"):
        decoder(
            torch.randn(2, 4), torch.zeros(2, dtype=torch.long), torch.ones(2), columns=columns
        )


def test_model_samples_closed_peaks_only_while_training(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.raises(ValueError, match="closed_feature_fraction"):
        mosaicvi.MosaicVI(synthetic_mosaic, closed_feature_fraction=0.0)
    model = mosaicvi.MosaicVI(
        synthetic_mosaic, n_latent=4, n_hidden=16, n_hidden_decoder=16, closed_feature_fraction=0.1
    )
    n_peaks = synthetic_mosaic["atac"].n_vars
    loader = model._make_data_loader(model.adata, batch_size=32)
    tensors = next(iter(loader))
    model.module.train()
    _, generative = model.module(tensors, compute_loss=False)
    assert generative["px"]["atac"]["logits"].shape[1] < n_peaks
    assert generative["px"]["rna"]["logits"].shape[1] == synthetic_mosaic["rna"].n_vars
    model.module.eval()
    _, generative = model.module(tensors, compute_loss=False)
    assert generative["px"]["atac"]["logits"].shape[1] == n_peaks
    model.train(max_epochs=2, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()


def _nll(decoder, data, z, batch, columns):
    params = decoder(z, batch, row_nnz(data), columns=columns)
    return decoder.negative_log_likelihood(data, params)


def _bernoulli_decoder(x: torch.Tensor):
    decoder = ModalityDecoder(4, x.shape[1], n_batch=1, likelihood="bernoulli", n_hidden=8).eval()
    return decoder, torch.randn(x.shape[0], 4), torch.zeros(x.shape[0], dtype=torch.long)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_fixed_size_sample_is_the_same_estimate_while_the_kept_features_fit(layout):
    # On an accelerator the sample has a fixed size (no read-back): with room for every kept
    # feature, it decodes them plus padding of weight 0, and the loss is the same.
    torch.manual_seed(0)
    x = sparse_binary_counts()
    data = x.to_sparse_csr() if layout == "csr" else x
    decoder, z, batch = _bernoulli_decoder(x)
    torch.manual_seed(1)
    variable = sample_feature_columns(data, 0.2)
    torch.manual_seed(1)
    fixed = sample_feature_columns(data, 0.2, capacity=len(variable.columns) + 7)
    assert len(fixed.columns) == len(variable.columns) + 7 and fixed.weighted_open
    assert torch.equal(fixed.columns[fixed.weight > 0], variable.columns)
    torch.testing.assert_close(fixed.weight[fixed.weight > 0], variable.weight)
    with torch.no_grad():
        torch.testing.assert_close(
            _nll(decoder, data, z, batch, fixed), _nll(decoder, data, z, batch, variable)
        )


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("capacity", [20, 6], ids=["closed-overflow", "open-overflow"])
def test_fixed_size_sample_stays_unbiased_beyond_its_capacity(layout, capacity):
    torch.manual_seed(0)
    x = sparse_binary_counts()
    n_open = int((x > 0).any(0).sum())
    assert capacity < n_open + 0.5 * (x.shape[1] - n_open)  # kept features overflow it
    data = x.to_sparse_csr() if layout == "csr" else x
    decoder, z, batch = _bernoulli_decoder(x)
    with torch.no_grad():
        full = decoder.negative_log_likelihood(data, decoder(z, batch, row_nnz(x)))
        estimates = torch.stack(
            [
                _nll(decoder, data, z, batch, sample_feature_columns(data, 0.5, capacity))
                for _ in range(1000)
            ]
        )
    assert not torch.allclose(estimates[0], full)
    standard_error = estimates.std(0) / len(estimates) ** 0.5
    assert torch.all((estimates.mean(0) - full).abs() < 5 * standard_error + 1e-4)


def test_feature_capacity_leaves_a_margin_within_the_features():
    assert feature_capacity(1000, 50_000) == 1280  # 1.25 x, a multiple of 64
    assert feature_capacity(1000, 1100) == 1100


def test_accelerator_path_trains_with_fixed_size_samples(synthetic_mosaic, monkeypatch):
    # Off the CPU the first step sizes the samples (one read-back), later steps decode a fixed
    # number of features; forced here on the CPU.
    monkeypatch.setattr(sampling, "reads_back_freely", lambda device: False)
    sizes = []
    original = sampling.sample_feature_columns

    def spy(x, fraction, capacity=None):
        sample = original(x, fraction, capacity)
        sizes.append((capacity, len(sample.columns)))
        return sample

    monkeypatch.setattr(sampling, "sample_feature_columns", spy)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, n_hidden=16, n_hidden_decoder=16)
    model.train(max_epochs=2, batch_size=64, accelerator="cpu", enable_progress_bar=False)
    capacity = model.module._feature_capacities["atac"]
    assert sizes[0][0] is None and capacity == feature_capacity(sizes[0][1], 200)
    assert len(sizes) > 2 and all(size == (capacity, capacity) for size in sizes[1:])
    assert np.isfinite(model.history["elbo_train"].to_numpy(dtype=float)).all()
