"""Variational feature embeddings from a guidance graph, with a negative-sampling graph loss."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence


class GraphEncoder(nn.Module):
    """Feature embeddings ``V`` with a Gaussian posterior, propagated over a guidance graph.

    As in GLUE: a free representation ``W`` (features x ``n_latent``) is propagated one step over
    the signed graph, ``H = A W`` with ``A_ts = sign_st * |w_st| / sqrt(in-degree(t))`` (degrees
    summed over the weights, self-loops included), and ``q(v_f) = N(mu(H_f), sigma(H_f))``.
    Linked features thus share parameters by construction, and :meth:`reconstruction_loss` pulls
    their embeddings together while pushing random pairs apart.

    The graph lives in buffers, so it moves with the module; every step costs
    ``O(edges x n_latent)`` whatever the number of cells.

    Parameters
    ----------
    graph
        Signed, weighted, symmetric feature x feature adjacency (self-loops included).
    n_latent
        Dimension of the embeddings (the latent dimension of the cells they meet).
    n_positive_edges
        Positive edges drawn per step, across the whole graph, with probability proportional to
        their weight (with replacement).
    n_negatives
        Negative pairs per positive edge: same source and sign, target drawn with probability
        proportional to its degree; pairs that are real edges are left out of the loss.
    """

    def __init__(
        self,
        graph: sp.spmatrix | sp.sparray,
        n_latent: int,
        n_positive_edges: int = 4096,
        n_negatives: int = 10,
    ):
        super().__init__()
        graph = sp.csr_matrix(graph, dtype=np.float32)
        graph.sum_duplicates()
        graph.eliminate_zeros()
        if graph.shape[0] != graph.shape[1]:
            raise ValueError(f"The guidance graph must be square, got shape {graph.shape}.")
        if graph.nnz == 0:
            raise ValueError("The guidance graph has no edges.")
        if n_positive_edges < 1 or n_negatives < 0:
            raise ValueError("`n_positive_edges` must be >= 1 and `n_negatives` >= 0.")
        self.n_features = graph.shape[0]
        self.n_positive_edges = n_positive_edges
        self.n_negatives = n_negatives

        coo = graph.tocoo()
        source, target = coo.row.astype(np.int64), coo.col.astype(np.int64)
        weight = np.abs(coo.data).astype(np.float64)
        sign = np.sign(coo.data).astype(np.float32)
        in_degree = np.bincount(target, weights=weight, minlength=self.n_features)
        norm = weight / np.sqrt(in_degree[target])
        # Propagation matrix A (rows = targets) in CSR, applied as an embedding bag over sources.
        propagation = sp.csr_matrix(
            ((sign * norm).astype(np.float32), (target, source)), shape=graph.shape
        )
        propagation.sort_indices()
        self.register_buffer("propagation_indptr", torch.as_tensor(propagation.indptr[:-1]).long())
        self.register_buffer("propagation_indices", torch.as_tensor(propagation.indices).long())
        self.register_buffer("propagation_values", torch.as_tensor(propagation.data))

        order = np.argsort(source * self.n_features + target)
        self.register_buffer("edge_source", torch.as_tensor(source[order]))
        self.register_buffer("edge_target", torch.as_tensor(target[order]))
        self.register_buffer("edge_weight", torch.as_tensor(weight[order], dtype=torch.float32))
        self.register_buffer("edge_sign", torch.as_tensor(sign[order]))
        self.register_buffer(
            "edge_keys", torch.as_tensor(source[order] * self.n_features + target[order])
        )
        self.register_buffer("edge_cdf", _cdf(weight[order]))
        degree = np.bincount(source, weights=weight, minlength=self.n_features)
        self.register_buffer("vertex_cdf", _cdf(degree))

        self.representation = nn.Parameter(0.1 * torch.randn(self.n_features, n_latent))
        self.loc = nn.Linear(n_latent, n_latent)
        self.scale = nn.Linear(n_latent, n_latent)

    @property
    def n_edges(self) -> int:
        """Number of stored (directed) edges, self-loops included."""
        return int(self.edge_source.numel())

    def forward(self) -> Normal:
        """Posterior ``q(V)`` of every feature embedding, ``(n_features, n_latent)``."""
        hidden = F.embedding_bag(
            self.propagation_indices,
            self.representation,
            self.propagation_indptr,
            mode="sum",
            per_sample_weights=self.propagation_values,
        )
        return Normal(self.loc(hidden), F.softplus(self.scale(hidden)) + 1e-4)

    def kl_divergence(self, qv: Normal) -> torch.Tensor:
        """KL of ``q(V)`` from ``N(0, I)``, summed over dimensions, averaged over features."""
        prior = Normal(torch.zeros_like(qv.loc), torch.ones_like(qv.scale))
        return kl_divergence(qv, prior).sum(-1).mean()

    def sample_edges(self) -> tuple[torch.Tensor, ...]:
        """Draw positive edges and negative pairs from the whole graph.

        Returns ``(source, target, sign, label, keep)``: negatives have label 0; ``keep`` is false
        for drawn negatives that are in fact edges of the graph.
        """
        device = self.edge_cdf.device
        draw = torch.rand(self.n_positive_edges, device=device, dtype=torch.float64)
        edges = torch.searchsorted(self.edge_cdf, draw).clamp_(max=self.n_edges - 1)
        source = self.edge_source[edges]
        positive_target = self.edge_target[edges]
        sign = self.edge_sign[edges]
        label = self.edge_weight[edges]
        if self.n_negatives == 0:
            keep = torch.ones_like(label, dtype=torch.bool)
            return source, positive_target, sign, label, keep
        negative_source = source.repeat_interleave(self.n_negatives)
        draw = torch.rand(negative_source.numel(), device=device, dtype=torch.float64)
        negative_target = torch.searchsorted(self.vertex_cdf, draw).clamp_(max=self.n_features - 1)
        keys = negative_source * self.n_features + negative_target
        found = torch.searchsorted(self.edge_keys, keys).clamp_(max=self.n_edges - 1)
        is_edge = self.edge_keys[found] == keys
        return (
            torch.cat([source, negative_source]),
            torch.cat([positive_target, negative_target]),
            torch.cat([sign, sign.repeat_interleave(self.n_negatives)]),
            torch.cat([label, torch.zeros_like(negative_source, dtype=label.dtype)]),
            torch.cat([torch.ones_like(label, dtype=torch.bool), ~is_edge]),
        )

    def reconstruction_loss(self, v: torch.Tensor) -> torch.Tensor:
        """Negative-sampling graph NLL of embeddings ``v`` (a sample of :meth:`forward`).

        ``p(edge s-t) = sigmoid(sign_st * <v_s, v_t>)``; the loss is the mean Bernoulli NLL of the
        positives (targets = edge weights) and of the negatives (targets 0), averaged.
        """
        source, target, sign, label, keep = self.sample_edges()
        logits = sign * (v[source] * v[target]).sum(-1)
        nll = F.binary_cross_entropy_with_logits(logits, label, reduction="none")
        positive = label > 0
        negative = ~positive & keep
        loss = nll[positive].mean()
        if negative.any():
            loss = 0.5 * (loss + nll[negative].mean())
        return loss


def _cdf(weights: np.ndarray) -> torch.Tensor:
    """Normalised cumulative sum, for inverse-CDF sampling with ``torch.searchsorted``."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    return torch.as_tensor(cumulative / cumulative[-1], dtype=torch.float64)
