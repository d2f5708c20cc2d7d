"""Product of Gaussian experts (MVAE): one expert per present modality, plus a prior expert."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mosaicvi.nn._posterior import FusedPosterior

if TYPE_CHECKING:
    from collections.abc import Sequence

#: Smallest variance of an expert (as the attention fusion's posterior).
MIN_VARIANCE = 1e-4


class GaussianExperts(nn.Module):
    """One Gaussian expert ``q_m(z | x_m) = N(mu_m, sigma_m^2)`` per modality, from its embedding.

    Parameters
    ----------
    modalities
        Modality names, in the order of the embeddings' second axis.
    n_input
        Size of each modality embedding.
    n_latent
        Dimension of z.
    """

    def __init__(self, modalities: Sequence[str], n_input: int, n_latent: int):
        super().__init__()
        self.modalities = list(modalities)
        self.loc = nn.ModuleDict({m: nn.Linear(n_input, n_latent) for m in self.modalities})
        self.variance = nn.ModuleDict({m: nn.Linear(n_input, n_latent) for m in self.modalities})

    def forward(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and variances ``(n_cells, n_modalities, n_latent)`` of every modality's expert."""
        locs = torch.stack(
            [self.loc[m](embeddings[:, i]) for i, m in enumerate(self.modalities)], dim=1
        )
        variances = torch.stack(
            [
                F.softplus(self.variance[m](embeddings[:, i])) + MIN_VARIANCE
                for i, m in enumerate(self.modalities)
            ],
            dim=1,
        )
        return locs, variances


def gaussian_product(
    locs: torch.Tensor, variances: torch.Tensor, mask: torch.Tensor, prior_expert: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Product of the Gaussian experts selected by ``mask``.

    Parameters
    ----------
    locs, variances
        ``(..., n_experts, n_latent)``.
    mask
        Boolean ``(..., n_experts)``: experts that take part (missing modalities do not).
    prior_expert
        Multiply in ``N(0, I)`` as well (so a cell with no expert gets the prior).

    Returns
    -------
    Mean and variance ``(..., n_latent)`` of the product, and each expert's share of the
    precision ``(..., n_experts)`` (averaged over latent dimensions; 0 for unselected experts,
    summing to 1 over the selected ones).
    """
    precisions = mask.unsqueeze(-1).to(locs.dtype) / variances
    expert_precision = precisions.sum(-2)
    total = expert_precision + 1.0 if prior_expert else expert_precision.clamp_min(1e-12)
    loc = (precisions * locs).sum(-2) / total
    shares = (precisions / expert_precision.clamp_min(1e-12).unsqueeze(-2)).mean(-1)
    return loc, 1.0 / total, shares


class ExpertFusion(nn.Module):
    """Base of the fusions built from one Gaussian expert per modality (PoE, MoE, MoPoE).

    Subclasses combine the experts of the modalities each cell has into a
    :class:`~mosaicvi.nn._posterior.FusedPosterior` in ``forward(embeddings, presence)``.

    Parameters
    ----------
    modalities
        Modality names, in the order of the embeddings' second axis.
    n_input
        Size of each modality embedding.
    n_latent
        Dimension of z.
    """

    def __init__(self, modalities: Sequence[str], n_input: int, n_latent: int):
        super().__init__()
        self.experts = GaussianExperts(modalities, n_input, n_latent)


class ProductOfExperts(ExpertFusion):
    """Fusion by a product of Gaussian experts with a prior expert (MVAE, Wu & Goodman 2018).

    ``q(z | x) ∝ N(0, I) prod_{m present} q_m(z | x_m)``: precisions add, and a modality a cell
    lacks contributes nothing. A modality's weight is its share of the experts' precision.

    Takes the arguments of :class:`ExpertFusion`.
    """

    def forward(self, embeddings: torch.Tensor, presence: torch.Tensor) -> FusedPosterior:
        """Posterior from ``embeddings`` ``(n_cells, n_modalities, n_input)`` and ``presence``."""
        locs, variances = self.experts(embeddings)
        loc, variance, shares = gaussian_product(locs, variances, presence, prior_expert=True)
        return FusedPosterior.gaussian(loc, variance.sqrt(), shares)
