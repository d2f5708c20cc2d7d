"""Unit tests of the building blocks in ``mosaicvi.nn``: sparse and dense inputs must agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mosaicvi.nn import (
    CenteredLogRatio,
    LogNormalize,
    MaskedGatedAttention,
    ModalityDecoder,
    ModalityEncoder,
    SparseInputLinear,
    TfIdf,
    make_input_transform,
    reverse_gradient,
)
from mosaicvi.nn._likelihoods import get_likelihood
from mosaicvi.nn._sparse import row_nnz, row_sums, select_rows


def random_counts(
    n_rows: int = 12, n_cols: int = 9, density: float = 0.3, seed: int = 0
) -> torch.Tensor:
    """Dense float32 counts with some all-zero rows (including the first and the last)."""
    generator = torch.Generator().manual_seed(seed)
    values = torch.randint(1, 5, (n_rows, n_cols), generator=generator).float()
    mask = torch.rand(n_rows, n_cols, generator=generator) < density
    x = values * mask
    x[0] = 0
    x[-1] = 0
    x[n_rows // 2] = 0
    x[1, :3] = torch.tensor([1.0, 2.0, 3.0])  # at least one non-empty row
    return x


def test_random_counts_helper_has_empty_and_full_rows():
    x = random_counts()
    assert (x.sum(1) == 0).sum() >= 3
    assert (x.sum(1) > 0).sum() >= 3


# --------------------------------------------------------------------------------------------------
# Sparse helpers
# --------------------------------------------------------------------------------------------------


def test_row_sums_and_nnz_sparse_equal_dense():
    x = random_counts()
    csr = x.to_sparse_csr()
    torch.testing.assert_close(row_sums(csr), row_sums(x))
    torch.testing.assert_close(row_sums(x), x.sum(1))
    torch.testing.assert_close(row_nnz(csr), row_nnz(x))
    torch.testing.assert_close(row_nnz(x), (x > 0).sum(1).float())


def test_select_rows_csr_matches_dense():
    x = random_counts(n_rows=10)
    rows = torch.tensor([1, 3, 4, 7])
    # select_rows requires the rows *not* selected to be empty (the zero rows of missing modalities).
    keep = torch.zeros(10, dtype=torch.bool)
    keep[rows] = True
    x[~keep] = 0
    assert (x[rows].sum(1) > 0).any()
    selected = select_rows(x.to_sparse_csr(), rows)
    assert selected.layout == torch.sparse_csr
    assert selected.shape == (4, x.shape[1])
    torch.testing.assert_close(selected.to_dense(), x[rows])
    torch.testing.assert_close(select_rows(x, rows), x[rows])


def test_select_rows_all_and_none():
    x = random_counts()
    csr = x.to_sparse_csr()
    all_rows = torch.arange(x.shape[0])
    torch.testing.assert_close(select_rows(csr, all_rows).to_dense(), x)
    empty = torch.zeros(x.shape)
    none = select_rows(empty.to_sparse_csr(), torch.tensor([], dtype=torch.long))
    assert none.shape == (0, x.shape[1])


@pytest.mark.parametrize("seed", [0, 1])
def test_sparse_input_linear_sparse_equals_dense(seed):
    torch.manual_seed(seed)
    x = random_counts(seed=seed)
    layer = SparseInputLinear(x.shape[1], 5)
    out_dense = layer(x)
    upstream = torch.randn_like(out_dense)
    (out_dense * upstream).sum().backward()
    grad_dense = layer.weight.grad.clone()
    bias_grad_dense = layer.bias.grad.clone()
    layer.zero_grad()

    out_sparse = layer(x.to_sparse_csr())
    (out_sparse * upstream).sum().backward()
    torch.testing.assert_close(out_sparse, out_dense)
    torch.testing.assert_close(out_sparse, x @ layer.weight.detach() + layer.bias.detach())
    torch.testing.assert_close(layer.weight.grad, grad_dense)
    torch.testing.assert_close(layer.bias.grad, bias_grad_dense)
    assert grad_dense.abs().sum() > 0


def test_sparse_input_linear_all_empty_rows():
    layer = SparseInputLinear(6, 3)
    x = torch.zeros(4, 6)
    out = layer(x.to_sparse_csr())
    torch.testing.assert_close(out, layer.bias.detach().expand(4, 3))


# --------------------------------------------------------------------------------------------------
# Likelihoods
# --------------------------------------------------------------------------------------------------


def bernoulli_nll(x, logits):
    return get_likelihood("bernoulli").negative_log_likelihood(x, {"logits": logits})


def test_bernoulli_nll_sparse_dense_and_bce():
    torch.manual_seed(0)
    x = random_counts(n_rows=8, n_cols=11)
    logits = torch.randn(8, 11)
    dense = bernoulli_nll(x, logits)
    sparse = bernoulli_nll(x.to_sparse_csr(), logits)
    reference = F.binary_cross_entropy_with_logits(logits, (x > 0).float(), reduction="none").sum(
        -1
    )
    assert dense.shape == (8,)
    torch.testing.assert_close(dense, reference)
    torch.testing.assert_close(sparse, reference)


def test_bernoulli_nll_gradient_sparse_equals_dense():
    torch.manual_seed(0)
    x = random_counts(n_rows=6, n_cols=7)
    logits = torch.randn(6, 7, requires_grad=True)
    bernoulli_nll(x, logits).sum().backward()
    grad_dense = logits.grad.clone()
    logits.grad = None
    bernoulli_nll(x.to_sparse_csr(), logits).sum().backward()
    torch.testing.assert_close(logits.grad, grad_dense)


@pytest.mark.parametrize("likelihood", ["nb", "zinb", "poisson", "bernoulli"])
def test_decoder_nll_sparse_equals_dense(likelihood):
    torch.manual_seed(0)
    decoder = ModalityDecoder(
        4, 9, n_batch=2, likelihood=likelihood, library_reference=5.0, n_hidden=8
    )
    decoder.eval()
    x = random_counts(n_rows=12, n_cols=9)
    z = torch.randn(12, 4)
    batch = torch.tensor([0, 1] * 6)
    library = row_nnz(x) if likelihood == "bernoulli" else row_sums(x)
    params = decoder(z, batch, library)
    dense = decoder.negative_log_likelihood(x, params)
    sparse = decoder.negative_log_likelihood(x.to_sparse_csr(), params)
    assert dense.shape == (12,)
    assert torch.isfinite(dense).all()
    torch.testing.assert_close(sparse, dense)


# --------------------------------------------------------------------------------------------------
# Input transforms
# --------------------------------------------------------------------------------------------------


def idf_for(n_cols: int) -> torch.Tensor:
    return torch.linspace(0.5, 3.0, n_cols)


@pytest.mark.parametrize(
    "transform",
    [LogNormalize(), LogNormalize(scale=10.0), TfIdf(idf_for(9)), CenteredLogRatio()],
    ids=["log_normalize", "log_normalize_10", "tfidf", "clr"],
)
def test_input_transforms_sparse_equals_dense(transform):
    x = random_counts()
    dense = transform(x)
    sparse = transform(x.to_sparse_csr())
    sparse = sparse.to_dense() if sparse.layout == torch.sparse_csr else sparse
    assert dense.shape == x.shape
    assert torch.isfinite(dense).all()
    torch.testing.assert_close(sparse, dense)
    # Empty rows stay zero.
    empty = x.sum(1) == 0
    assert (dense[empty] == 0).all()


def test_log_normalize_values():
    x = random_counts()
    expected = np.log1p(x.numpy() / np.maximum(x.numpy().sum(1, keepdims=True), 1) * 1e4)
    np.testing.assert_allclose(LogNormalize()(x).numpy(), expected, rtol=1e-5)


def test_tfidf_values():
    x = random_counts()
    idf = idf_for(9)
    binary = (x > 0).float().numpy()
    tf = 1e4 / np.maximum(binary.sum(1, keepdims=True), 1)
    expected = np.log1p(binary * tf * idf.numpy())
    np.testing.assert_allclose(TfIdf(idf)(x).numpy(), expected, rtol=1e-5)


def test_clr_values():
    x = random_counts()
    logged = np.log1p(x.numpy())
    expected = logged - logged.mean(1, keepdims=True)
    np.testing.assert_allclose(CenteredLogRatio()(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_make_input_transform():
    assert isinstance(make_input_transform("log_normalize"), LogNormalize)
    assert isinstance(make_input_transform("clr"), CenteredLogRatio)
    assert isinstance(make_input_transform("tfidf", {"idf": idf_for(3)}), TfIdf)
    with pytest.raises(ValueError, match="idf"):
        make_input_transform("tfidf")
    with pytest.raises(ValueError, match="`input transform` is"):
        make_input_transform("zscore")


@pytest.mark.parametrize("transform", ["log_normalize", "tfidf", "clr"])
def test_encoder_sparse_equals_dense(transform):
    torch.manual_seed(0)
    x = random_counts()
    encoder = ModalityEncoder(
        x.shape[1], make_input_transform(transform, {"idf": idf_for(9)}), n_hidden=8, n_layers=2
    )
    encoder.eval()
    torch.testing.assert_close(encoder(x.to_sparse_csr()), encoder(x))


# --------------------------------------------------------------------------------------------------
# Fusion and gradient reversal
# --------------------------------------------------------------------------------------------------


def test_masked_gated_attention():
    torch.manual_seed(0)
    n_cells, n_modalities, n_hidden = 6, 3, 5
    attention = MaskedGatedAttention(n_hidden, n_attention=7)
    embeddings = torch.randn(n_cells, n_modalities, n_hidden)
    presence = torch.tensor(
        [
            [True, True, True],
            [True, False, False],
            [False, True, False],
            [False, False, True],
            [True, False, True],
            [False, True, True],
        ]
    )
    fused, weights = attention(embeddings, presence)
    assert fused.shape == (n_cells, n_hidden)
    assert weights.shape == (n_cells, n_modalities)
    torch.testing.assert_close(weights.sum(1), torch.ones(n_cells))
    assert (weights[~presence] == 0).all()
    assert (weights[presence] > 0).all()
    # A single present modality gets all the weight, so fused is its embedding.
    torch.testing.assert_close(fused[1], embeddings[1, 0])
    torch.testing.assert_close(fused[3], embeddings[3, 2])
    torch.testing.assert_close(fused, torch.einsum("nm,nmh->nh", weights, embeddings))

    # Absent embeddings have no influence at all.
    changed = embeddings.clone()
    changed[~presence] = torch.randn(int((~presence).sum()), n_hidden) * 100
    fused_changed, weights_changed = attention(changed, presence)
    torch.testing.assert_close(fused_changed, fused)
    torch.testing.assert_close(weights_changed, weights)
    # ... while present ones do.
    changed[0, 0] += 10
    assert not torch.allclose(attention(changed, presence)[0][0], fused[0])


def test_masked_gated_attention_no_modality_gives_zeros():
    attention = MaskedGatedAttention(4, n_attention=3)
    fused, weights = attention(torch.randn(2, 2, 4), torch.tensor([[False, False], [True, False]]))
    assert torch.isfinite(fused).all()
    assert (weights[0] == 0).all()
    assert (fused[0] == 0).all()
    torch.testing.assert_close(weights[1], torch.tensor([1.0, 0.0]))


def test_reverse_gradient():
    x = torch.randn(3, 2, requires_grad=True)
    y = reverse_gradient(x, 2.5)
    torch.testing.assert_close(y, x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, -2.5))
