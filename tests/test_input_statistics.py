"""Statistics fitted on training cells: LSI loadings, IDF, library reference, decoder bias."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mosaicvi.model._input_statistics import (
    binary_tfidf,
    fit_lsi,
    input_transform_params,
    inverse_document_frequency,
)
from mosaicvi.nn import (
    ModalityDecoder,
    ModalityEncoder,
    TfIdf,
    TfIdfLsi,
    TfIdfWithLsi,
    make_input_transform,
)
from mosaicvi.nn._likelihoods import get_likelihood


def two_group_peaks(n_cells: int = 300, n_peaks: int = 200, seed: int = 0) -> tuple:
    """Sparse binary accessibility: group 0 opens peaks 0-99 more often, group 1 peaks 100-199."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, n_cells)
    rate = np.full((n_cells, n_peaks), 0.02)
    rate[group == 0, :100] = 0.15
    rate[group == 1, 100:] = 0.15
    return sp.csr_matrix((rng.random((n_cells, n_peaks)) < rate).astype(np.float32)), group


def test_binary_tfidf_matches_the_torch_transform():
    counts, _ = two_group_peaks()
    idf = inverse_document_frequency(counts)
    expected = TfIdf(torch.as_tensor(idf))(torch.as_tensor(counts.toarray()))
    np.testing.assert_allclose(binary_tfidf(counts, idf).toarray(), expected.numpy(), rtol=1e-5)


def test_lsi_separates_groups_and_sparse_equals_dense():
    counts, group = two_group_peaks()
    params = input_transform_params("lsi", counts, n_lsi_components=5)
    assert params["loadings"].shape == (200, 5)
    transform = make_input_transform("lsi", params)
    assert isinstance(transform, TfIdfLsi) and transform.n_output == 5
    dense = transform(torch.as_tensor(counts.toarray()))
    sparse = transform(torch.as_tensor(counts.toarray()).to_sparse_csr())
    torch.testing.assert_close(sparse, dense, rtol=1e-4, atol=1e-4)
    # Row-standardised components.
    np.testing.assert_allclose(dense.mean(1).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(dense.std(1).numpy(), 1.0, atol=1e-4)
    # Some component tells the planted groups apart.
    separation = [
        abs(dense[group == 0, k].mean() - dense[group == 1, k].mean()) / dense[:, k].std()
        for k in range(5)
    ]
    assert max(separation) > 1.5


def test_lsi_encoder_reads_components():
    counts, _ = two_group_peaks()
    transform = make_input_transform("lsi", input_transform_params("lsi", counts, 4))
    encoder = ModalityEncoder(200, transform, n_hidden=8, n_layers=1)
    assert encoder.input_layer.weight.shape == (4, 8)
    assert encoder(torch.as_tensor(counts.toarray()).to_sparse_csr()).shape == (300, 8)


def test_lsi_rejects_too_many_components():
    counts, _ = two_group_peaks(n_cells=20)
    with pytest.raises(ValueError, match="n_lsi_components"):
        fit_lsi(counts, inverse_document_frequency(counts), n_components=19)
    with pytest.raises(ValueError, match="loadings"):
        make_input_transform("lsi", {"idf": torch.ones(3)})


def test_transforms_without_parameters():
    counts, _ = two_group_peaks()
    assert input_transform_params("log_normalize", counts, 5) == {}
    assert set(input_transform_params("tfidf", counts, 5)) == {"idf"}


def test_initial_decoder_bias_reproduces_average_profile():
    counts, _ = two_group_peaks()
    bias = get_likelihood("bernoulli").initial_bias(counts)
    fraction = np.asarray((counts > 0).mean(0)).ravel()
    np.testing.assert_allclose(torch.sigmoid(bias).numpy(), fraction, atol=0.01)
    rna = sp.csr_matrix(np.array([[1.0, 3.0, 0.0], [3.0, 1.0, 0.0]]))
    share = torch.softmax(get_likelihood("nb").initial_bias(rna), 0).numpy()
    np.testing.assert_allclose(share, [0.5, 0.5, 0.0], atol=0.15)
    assert share[2] < share[0]


def test_decoder_starts_at_initial_bias():
    bias = torch.linspace(-3.0, 1.0, 6)
    decoder = ModalityDecoder(4, 6, n_batch=2, likelihood="bernoulli", initial_bias=bias)
    torch.testing.assert_close(decoder.batch_bias.detach(), bias.expand(2, -1))
    with pytest.raises(ValueError, match="initial_bias"):
        ModalityDecoder(4, 6, n_batch=2, initial_bias=torch.zeros(5))


def test_lsi_components_lowered_for_small_data():
    counts, _ = two_group_peaks(n_cells=12)
    assert input_transform_params("lsi", counts, 50)["loadings"].shape == (200, 10)
    with pytest.raises(ValueError, match="tfidf"):
        input_transform_params("lsi", counts[:2], 50)


def test_tfidf_with_lsi_encoder_uses_both_views():
    counts, _ = two_group_peaks()
    params = input_transform_params("tfidf_lsi", counts, 4)
    transform = make_input_transform("tfidf_lsi", params)
    assert isinstance(transform, TfIdfWithLsi)
    encoder = ModalityEncoder(200, transform, n_hidden=8, n_layers=1).eval()
    assert encoder.input_layer.weight.shape == (200, 8)
    assert encoder.lsi_layer.in_features == 4
    dense = torch.as_tensor(counts.toarray())
    torch.testing.assert_close(
        encoder(dense.to_sparse_csr()), encoder(dense), rtol=1e-4, atol=1e-4
    )
    # Each view reaches the output.
    baseline = encoder(dense)
    with torch.no_grad():
        encoder.lsi_layer.weight.zero_()
    assert not torch.allclose(encoder(dense), baseline)


@pytest.mark.parametrize("name", ["nb", "poisson", "bernoulli"])
def test_statistics_over_a_row_mask_equal_those_of_the_copied_rows(monkeypatch, name):
    """Model set-up passes the presence mask instead of copying the measured rows (memory at 10^6
    cells); the rows outside the mask hold counts here, so they must be left out, not just empty."""
    import mosaicvi.nn._column_statistics as statistics

    monkeypatch.setattr(statistics, "_ROW_CHUNK", 37)  # several chunks, one partial
    likelihood = get_likelihood(name)
    counts, _ = two_group_peaks(n_cells=300)
    counts = counts + sp.csr_matrix(np.eye(300, 200, dtype=np.float32))
    rows = np.random.default_rng(1).random(300) < 0.6
    measured = counts[rows]
    assert likelihood.library_reference(counts, rows) == likelihood.library_reference(measured)
    np.testing.assert_array_equal(
        likelihood.initial_bias(counts, rows).numpy(), likelihood.initial_bias(measured).numpy()
    )
    masked = input_transform_params("tfidf_lsi", counts, 5, seed=3, rows=rows)
    copied = input_transform_params("tfidf_lsi", measured, 5, seed=3)
    np.testing.assert_array_equal(masked["idf"].numpy(), copied["idf"].numpy())
    np.testing.assert_allclose(masked["loadings"].numpy(), copied["loadings"].numpy(), rtol=1e-5)
    assert not np.allclose(
        masked["idf"].numpy(), input_transform_params("tfidf", counts, 5)["idf"]
    )


def test_lsi_subset_beyond_the_cap_is_drawn_from_the_masked_rows(monkeypatch):
    import mosaicvi.model._input_statistics as statistics

    monkeypatch.setattr(statistics, "MAX_LSI_FIT_CELLS", 100)
    counts, _ = two_group_peaks(n_cells=400)
    rows = np.arange(400) % 2 == 0
    idf = inverse_document_frequency(counts, rows)
    np.testing.assert_allclose(
        fit_lsi(counts, idf, 5, seed=2, rows=rows),
        fit_lsi(counts[rows], idf, 5, seed=2),
        rtol=1e-5,
    )
