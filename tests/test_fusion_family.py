"""The fusion family behind ``MosaicVI(fusion=...)``: attention, PoE, MoE, MoPoE."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from mosaicvi import MosaicVI
from mosaicvi.nn import FUSIONS, FusedPosterior, make_fusion
from mosaicvi.nn._mixture_of_products import modality_subsets
from mosaicvi.nn._sparse import gather_rows, to_dense

MODALITIES = ["rna", "atac", "adt"]
#: The synthetic mosaic's RNA-only cell whose RNA counts are all zero (see conftest).
ZERO_RNA_CELL = "b1_cell0"
N_HIDDEN, N_LATENT = 6, 4
#: Cells: all three modalities, rna+atac, rna only, adt only.
PRESENCE = torch.tensor(
    [[True, True, True], [True, True, False], [True, False, False], [False, False, True]]
)


def fused(name: str, embeddings: torch.Tensor, presence: torch.Tensor = PRESENCE):
    torch.manual_seed(0)
    fusion = make_fusion(name, MODALITIES, N_HIDDEN, N_LATENT, n_attention=5)
    return fusion(embeddings, presence)


@pytest.mark.parametrize("name", FUSIONS)
def test_fusion_weights_and_missing_modalities(name):
    embeddings = torch.randn(len(PRESENCE), len(MODALITIES), N_HIDDEN)
    posterior = fused(name, embeddings)
    assert isinstance(posterior, FusedPosterior)
    weights = posterior.modality_weights
    assert (weights[~PRESENCE] == 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(len(PRESENCE)))
    # A cell with exactly one modality puts all its weight on it.
    torch.testing.assert_close(weights[2], torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(weights[3], torch.tensor([0.0, 0.0, 1.0]))
    torch.testing.assert_close(posterior.component_weights.sum(1), torch.ones(len(PRESENCE)))
    # Whatever the embeddings of missing modalities hold, the posterior is the same.
    changed = embeddings.clone()
    changed[~PRESENCE] = 100.0 * torch.randn(int((~PRESENCE).sum()), N_HIDDEN)
    again = fused(name, changed)
    for a, b in ((posterior, again),):
        qa, qb = a.moment_matched(), b.moment_matched()
        torch.testing.assert_close(qa.loc, qb.loc)
        torch.testing.assert_close(qa.scale, qb.scale)
    # ... and changing a present modality changes it.
    changed[0, 0] += 1.0
    assert not torch.allclose(fused(name, changed).moment_matched().loc[0], qa.loc[0])


@pytest.mark.parametrize("name", FUSIONS)
def test_fusion_gradients_finite_when_a_modality_is_missing_everywhere(name):
    """A minibatch in which no cell measured ATAC: no NaN in the posterior or the gradients."""
    presence = PRESENCE.clone()
    presence[:, 1] = False
    torch.manual_seed(0)
    fusion = make_fusion(name, MODALITIES, N_HIDDEN, N_LATENT, n_attention=5)
    embeddings = torch.randn(len(presence), len(MODALITIES), N_HIDDEN, requires_grad=True)
    posterior = fusion(embeddings, presence)
    z, cells, weight = posterior.stratified_sample()
    loss = (weight * (z.square().sum(1) - posterior.log_prob(z, cells))).sum()
    loss = loss + posterior.moment_matched().loc.sum() + posterior.sample(3).sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(embeddings.grad).all()
    for p in fusion.parameters():
        assert p.grad is None or torch.isfinite(p.grad).all()


def test_poe_is_the_precision_weighted_product_with_a_prior_expert():
    embeddings = torch.randn(len(PRESENCE), len(MODALITIES), N_HIDDEN)
    torch.manual_seed(0)
    fusion = make_fusion("poe", MODALITIES, N_HIDDEN, N_LATENT)
    posterior = fusion(embeddings, PRESENCE)
    locs, variances = fusion.experts(embeddings)
    # Cell 1 has rna and atac: precision 1 + 1/v_rna + 1/v_atac.
    precision = 1.0 + 1.0 / variances[1, 0] + 1.0 / variances[1, 1]
    loc = (locs[1, 0] / variances[1, 0] + locs[1, 1] / variances[1, 1]) / precision
    torch.testing.assert_close(posterior.locs[1, 0], loc)
    torch.testing.assert_close(posterior.scales[1, 0], precision.rsqrt())
    share_rna = ((1.0 / variances[1, 0]) / (precision - 1.0)).mean()
    torch.testing.assert_close(posterior.modality_weights[1, 0], share_rna)


def test_moe_components_are_the_present_experts():
    embeddings = torch.randn(len(PRESENCE), len(MODALITIES), N_HIDDEN)
    torch.manual_seed(0)
    fusion = make_fusion("moe", MODALITIES, N_HIDDEN, N_LATENT)
    posterior = fusion(embeddings, PRESENCE)
    expected = PRESENCE.float() / PRESENCE.sum(1, keepdim=True)
    torch.testing.assert_close(posterior.component_weights, expected)
    z, cells, weight = posterior.stratified_sample()
    # Stratified: one sample per present expert of each cell, weighted 1/|present|.
    assert cells.tolist() == [0, 0, 0, 1, 1, 2, 3]
    torch.testing.assert_close(weight, expected[PRESENCE])
    # log q(z) of the mixture, by hand for cell 1.
    locs, variances = fusion.experts(embeddings)
    point = z[3]
    by_hand = torch.logsumexp(
        torch.stack(
            [
                torch.distributions.Normal(locs[1, m], variances[1, m].sqrt())
                .log_prob(point)
                .sum()
                for m in (0, 1)
            ]
        )
        - np.log(2.0),
        0,
    )
    torch.testing.assert_close(posterior.log_prob(z[3:4], cells[3:4])[0], by_hand)


def test_mopoe_subsets_and_components():
    subsets = modality_subsets(3)
    assert subsets.shape == (7, 3)
    assert {tuple(row.tolist()) for row in subsets} == {
        tuple(bool(i >> k & 1) for k in range(3)) for i in range(1, 8)
    }
    embeddings = torch.randn(len(PRESENCE), len(MODALITIES), N_HIDDEN)
    posterior = fused("mopoe", embeddings)
    n_components = (posterior.component_weights > 0).sum(1).tolist()
    assert n_components == [7, 3, 1, 1]
    # A single-modality cell's only component is that modality's expert.
    torch.manual_seed(0)
    fusion = make_fusion("mopoe", MODALITIES, N_HIDDEN, N_LATENT)
    locs, variances = fusion.experts(embeddings)
    posterior = fusion(embeddings, PRESENCE)
    q = posterior.moment_matched()
    torch.testing.assert_close(q.loc[2], locs[2, 0])
    torch.testing.assert_close(q.scale[2], variances[2, 0].sqrt())


def test_unknown_fusion():
    with pytest.raises(ValueError, match="fusion"):
        make_fusion("sum", MODALITIES, N_HIDDEN, N_LATENT)


def test_gather_rows_matches_dense():
    rng = np.random.default_rng(0)
    dense = (rng.random((6, 5)) < 0.4) * rng.integers(1, 4, (6, 5))
    csr = sp.csr_matrix(dense.astype(np.float32))
    x = torch.sparse_csr_tensor(
        torch.as_tensor(csr.indptr, dtype=torch.int64),
        torch.as_tensor(csr.indices, dtype=torch.int64),
        torch.as_tensor(csr.data),
        size=csr.shape,
    )
    rows = torch.tensor([4, 1, 1, 0, 5])
    np.testing.assert_array_equal(to_dense(gather_rows(x, rows)).numpy(), dense[rows.numpy()])
    assert gather_rows(x, rows[:0]).shape == (0, 5)


# --------------------------------------------------------------------------------------------------
# Training each fusion on a small mosaic
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fusion", FUSIONS)
def test_each_fusion_trains_on_a_mosaic(fusion, synthetic_mosaic, train_quick):
    """b1 has only RNA and b2 only ADT: ATAC is missing for every cell of those batches."""
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = MosaicVI(synthetic_mosaic, n_hidden=16, n_hidden_decoder=16, n_latent=4, fusion=fusion)
    train_quick(model, max_epochs=2, batch_size=64)
    for key in ("elbo_train", "reconstruction_loss_train", "kl_local_train"):
        assert np.isfinite(model.history[key].to_numpy(dtype=float)).all(), key
    z = model.get_latent_representation()
    assert z.shape == (synthetic_mosaic.n_obs, 4)
    assert np.isfinite(z).all()
    weights = model.get_attention_weights()
    presence = synthetic_mosaic.obsm["_mosaicvi_presence"]
    assert (weights.to_numpy()[~presence.to_numpy()] == 0).all()
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    # A cell with exactly one modality (and all-zero counts) alone in its minibatch.
    index = synthetic_mosaic.obs_names.get_loc(ZERO_RNA_CELL)
    alone = model.get_latent_representation(indices=[index])
    assert np.isfinite(alone).all()
    np.testing.assert_allclose(alone[0], z[index], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model.get_attention_weights(indices=[index])["rna"], 1.0)
    # Validation / ELBO on data where a modality is missing for every cell of a batch.
    b1 = np.flatnonzero(synthetic_mosaic.obs["batch"] == "b1")
    assert np.isfinite(model.get_elbo(indices=b1))


@pytest.mark.parametrize("fusion", ["attention", "moe"])
def test_cross_modal_term(fusion, synthetic_mosaic, train_quick):
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = MosaicVI(
        synthetic_mosaic,
        n_hidden=16,
        n_hidden_decoder=16,
        n_latent=4,
        fusion=fusion,
        cross_modal_weight=0.5,
    )
    train_quick(model, max_epochs=2, batch_size=64)
    cross = model.history["cross_modal_loss_train"].to_numpy(dtype=float)
    assert np.isfinite(cross).all() and (cross > 0).all()
    with pytest.raises(ValueError, match="cross_modal_weight"):
        MosaicVI(synthetic_mosaic, cross_modal_weight=-1.0)
