"""mmAAVI's mixture prior: discrete cluster ``c``, continuous ``u`` and ``p(z | c, u)``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, RelaxedOneHotCategorical, kl_divergence

from mosaicvi.nn._classifier import LatentClassifier
from mosaicvi.nn._posterior import FusedPosterior

_MIN_SCALE = 1e-4


class MixturePrior(nn.Module):
    """``p(z) = sum_c pi_c int p(z | c, u) N(u; 0, I) du``: an infinite mixture of Gaussians.

    As mmAAVI (Rong et al. 2024): ``q(c | z)`` is an MLP classifier sampled with a Gumbel-softmax
    (relaxed one-hot, temperature 1); ``q(u | c, z)`` an MLP; ``p(z | c, u)`` one linear layer;
    ``p(u) = N(0, I)``; ``p(c)`` uniform. For a cell with a known label, ``c`` is its one-hot
    label and the cluster KL is dropped. Per cell, with one sample each,

    - ``kl_z = log q(z | x) - log p(z | c, u)``,
    - ``kl_u = KL(q(u | c, z) || N(0, I))``,
    - ``kl_c = KL(q(c | z) || pi)`` (unlabelled cells only).

    Parameters
    ----------
    n_latent
        Dimension of z.
    n_clusters
        Number of mixture components ``K``; with labels, the first ones are the label classes.
    n_continuous
        Dimension of u (default: ``n_latent``).
    n_hidden
        Width of the hidden layers of ``q(c | z)`` and ``q(u | c, z)`` (mmAAVI: 50).
    temperature
        Temperature of the Gumbel-softmax.
    """

    def __init__(
        self,
        n_latent: int,
        n_clusters: int,
        n_continuous: int | None = None,
        n_hidden: int = 50,
        temperature: float = 1.0,
    ):
        super().__init__()
        if n_clusters < 2:
            raise ValueError(f"The mixture prior needs `n_clusters` >= 2, got {n_clusters}.")
        n_continuous = n_continuous or n_latent
        self.n_clusters = n_clusters
        self.temperature = temperature
        self.cluster_classifier = LatentClassifier(n_latent, n_clusters, n_hidden)
        self.u_encoder = nn.Sequential(
            nn.Linear(n_clusters + n_latent, n_hidden),
            nn.LayerNorm(n_hidden),
            nn.ReLU(),
            nn.Linear(n_hidden, 2 * n_continuous),
        )
        self.z_prior = nn.Linear(n_clusters + n_continuous, 2 * n_latent)

    def cluster_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of ``q(c | z)`` ``(n, n_clusters)``."""
        return self.cluster_classifier(z)

    def kl_terms(
        self,
        posterior: FusedPosterior,
        z: torch.Tensor,
        cell_index: torch.Tensor,
        weight: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-cell ``{"kl_z", "kl_u", "kl_c"}``, each ``(n_cells,)``.

        ``z``, ``cell_index`` and ``weight`` are :meth:`FusedPosterior.stratified_sample`'s
        output; ``labels`` gives each cell's cluster when known, ``-1`` otherwise.
        """
        logits = self.cluster_logits(z)
        c = RelaxedOneHotCategorical(
            torch.tensor(self.temperature, device=z.device), logits=logits
        ).rsample()
        labelled = torch.zeros_like(weight, dtype=torch.bool)
        if labels is not None:
            row_labels = labels[cell_index]
            labelled = row_labels >= 0
            one_hot = F.one_hot(row_labels.clamp_min(0), self.n_clusters).to(c.dtype)
            c = torch.where(labelled.unsqueeze(-1), one_hot, c)
        u_loc, u_scale = self.u_encoder(torch.cat([c, z], dim=-1)).chunk(2, dim=-1)
        qu = Normal(u_loc, F.softplus(u_scale) + _MIN_SCALE)
        u = qu.rsample()
        z_loc, z_scale = self.z_prior(torch.cat([c, u], dim=-1)).chunk(2, dim=-1)
        pz = Normal(z_loc, F.softplus(z_scale) + _MIN_SCALE)
        kl_z = posterior.log_prob(z, cell_index) - pz.log_prob(z).sum(-1)
        kl_u = kl_divergence(qu, Normal(torch.zeros_like(u_loc), torch.ones_like(u_loc))).sum(-1)
        log_q = F.log_softmax(logits, dim=-1)
        kl_c = (log_q.exp() * (log_q + math.log(self.n_clusters))).sum(-1)
        kl_c = torch.where(labelled, torch.zeros_like(kl_c), kl_c)
        n_cells = posterior.locs.shape[0]
        return {
            name: z.new_zeros(n_cells, dtype=torch.float32).index_add(
                0, cell_index, (weight * term).float()
            )
            for name, term in (("kl_z", kl_z), ("kl_u", kl_u), ("kl_c", kl_c))
        }
