"""GraphEncoder (feature embeddings from a guidance graph) and the hybrid decoders."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mosaicvi.nn import GraphEncoder, ModalityDecoder


def ring_graph(n: int = 12, negative: tuple[int, int] | None = None) -> sp.csr_matrix:
    """Symmetric ring with self-loops; weights 1 except edge 0-1 (0.5); optional negative edge."""
    rows, cols, vals = [], [], []
    for i in range(n):
        j = (i + 1) % n
        w = 0.5 if i == 0 else 1.0
        rows += [i, j]
        cols += [j, i]
        vals += [w, w]
    if negative is not None:
        a, b = negative
        rows += [a, b]
        cols += [b, a]
        vals += [-1.0, -1.0]
    rows += list(range(n))
    cols += list(range(n))
    vals += [1.0] * n
    return sp.csr_matrix((vals, (rows, cols)), shape=(n, n), dtype=np.float32)


def test_propagation_matches_normalised_adjacency():
    graph = ring_graph(negative=(0, 6))
    encoder = GraphEncoder(graph, n_latent=4)
    dense = graph.toarray()
    weights = np.abs(dense)
    in_degree = weights.sum(0)
    expected_matrix = (np.sign(dense) * weights / np.sqrt(in_degree)[None, :]).T
    representation = encoder.representation.detach().numpy()
    expected = torch.as_tensor(expected_matrix @ representation, dtype=torch.float32)
    qv = encoder()
    torch.testing.assert_close(qv.loc, encoder.loc(expected), rtol=1e-5, atol=1e-5)
    assert qv.loc.shape == (12, 4)
    assert torch.all(qv.scale > 0)


def test_sampled_positives_are_edges_and_negatives_are_not():
    graph = ring_graph(n=30, negative=(0, 15))
    encoder = GraphEncoder(graph, n_latent=3, n_positive_edges=500, n_negatives=4)
    source, target, sign, label, keep = encoder.sample_edges()
    assert source.shape == target.shape == (500 * 5,)
    dense = graph.toarray()
    positive = label > 0
    assert positive.sum() == 500
    s, t = source[positive].numpy(), target[positive].numpy()
    assert np.all(dense[s, t] != 0)
    torch.testing.assert_close(label[positive], torch.as_tensor(np.abs(dense[s, t])))
    torch.testing.assert_close(sign[positive], torch.as_tensor(np.sign(dense[s, t])))
    s, t = source[~positive].numpy(), target[~positive].numpy()
    kept = keep[~positive].numpy()
    assert np.all(dense[s[kept], t[kept]] == 0)
    assert np.all(dense[s[~kept], t[~kept]] != 0)
    assert kept.mean() > 0.5
    # Negatives keep the sign of their positive.
    torch.testing.assert_close(sign[~positive], sign[positive].repeat_interleave(4))


def test_positive_edges_are_drawn_in_proportion_to_weight():
    graph = ring_graph(n=4)
    torch.manual_seed(0)
    encoder = GraphEncoder(graph, n_latent=2, n_positive_edges=40_000, n_negatives=0)
    source, target, *_ = encoder.sample_edges()
    counts = np.zeros((4, 4))
    np.add.at(counts, (source.numpy(), target.numpy()), 1)
    expected = np.abs(graph.toarray()) / np.abs(graph.toarray()).sum() * 40_000
    assert np.allclose(counts, expected, rtol=0.1)
    # Edge 0-1 has half the weight of edge 1-2.
    assert counts[0, 1] / counts[1, 2] == pytest.approx(0.5, rel=0.15)


def test_graph_loss_trains_linked_features_together():
    """Two cliques joined by nothing: after training, within-clique pairs score above across."""
    blocks = [np.ones((6, 6)), np.ones((6, 6))]
    graph = sp.csr_matrix(sp.block_diag(blocks), dtype=np.float32)
    torch.manual_seed(0)
    encoder = GraphEncoder(graph, n_latent=4, n_positive_edges=256, n_negatives=5)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
    first = None
    for _ in range(200):
        qv = encoder()
        loss = encoder.reconstruction_loss(qv.rsample()) + 0.01 * encoder.kl_divergence(qv)
        first = loss.item() if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first
    v = encoder().loc.detach()
    scores = v @ v.T
    within = scores[:6, :6].mean()
    across = scores[:6, 6:].mean()
    assert within > across + 1.0


def test_kl_is_zero_for_the_prior_and_positive_otherwise():
    encoder = GraphEncoder(ring_graph(), n_latent=3)
    qv = encoder()
    assert encoder.kl_divergence(qv) > 0
    prior = torch.distributions.Normal(torch.zeros(12, 3), torch.ones(12, 3))
    assert encoder.kl_divergence(prior) == pytest.approx(0.0, abs=1e-6)


def test_graph_encoder_rejects_bad_graphs():
    with pytest.raises(ValueError, match="square"):
        GraphEncoder(sp.csr_matrix(np.ones((3, 4))), n_latent=2)
    with pytest.raises(ValueError, match="no edges"):
        GraphEncoder(sp.csr_matrix((3, 3)), n_latent=2)


def test_graph_state_moves_with_the_module_and_is_saved():
    encoder = GraphEncoder(ring_graph(), n_latent=2)
    state = encoder.state_dict()
    for name in ("propagation_values", "edge_keys", "edge_cdf", "vertex_cdf"):
        assert name in state
    buffers = dict(encoder.named_buffers())
    assert buffers["edge_cdf"].dtype == torch.float64
    assert buffers["edge_cdf"][-1] == pytest.approx(1.0)


def decoder_inputs(n_cells: int = 5, n_features: int = 7, n_latent: int = 3):
    torch.manual_seed(0)
    z = torch.randn(n_cells, n_latent)
    batch = torch.zeros(n_cells, dtype=torch.long)
    library = torch.full((n_cells,), 10.0)
    embeddings = torch.randn(n_features, n_latent)
    return z, batch, library, embeddings


def test_hybrid_decoder_mixes_inner_product_and_mlp():
    z, batch, library, v = decoder_inputs()
    mlp_only = ModalityDecoder(3, 7, 1, likelihood="bernoulli", library_reference=10.0)
    hybrid = ModalityDecoder(
        3, 7, 1, likelihood="bernoulli", library_reference=10.0, graph_weight=0.9
    )
    hybrid.load_state_dict(mlp_only.state_dict(), strict=True)
    mlp_only.eval()
    hybrid.eval()
    # Per-batch scale is softplus(inverse softplus(1)) = 1 and the bias 0 at initialisation, and
    # the library equals the reference, so the logits are eta itself.
    mlp_eta = mlp_only(z, batch, library)["logits"]
    hybrid_eta = hybrid(z, batch, library, feature_embeddings=v)["logits"]
    torch.testing.assert_close(hybrid_eta, 0.1 * mlp_eta + 0.9 * (z @ v.T), rtol=1e-5, atol=1e-5)
    # Without a graph weight, embeddings are ignored.
    torch.testing.assert_close(
        mlp_only(z, batch, library, feature_embeddings=v)["logits"], mlp_eta
    )


def test_pure_inner_product_decoder_has_no_mlp():
    z, batch, library, v = decoder_inputs()
    decoder = ModalityDecoder(3, 7, 2, likelihood="nb", library_reference=10.0, graph_weight=1.0)
    assert not hasattr(decoder, "output")
    params = decoder(z, batch, library, feature_embeddings=v)
    torch.testing.assert_close(params["logits"], z @ v.T, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(params["mean"].sum(1), library)


def test_hybrid_decoder_needs_embeddings_and_a_valid_weight():
    z, batch, library, _ = decoder_inputs()
    decoder = ModalityDecoder(3, 7, 1, graph_weight=0.5)
    with pytest.raises(ValueError, match="feature embeddings"):
        decoder(z, batch, library)
    with pytest.raises(ValueError, match="graph_weight"):
        ModalityDecoder(3, 7, 1, graph_weight=1.5)
