"""Mixture of products of experts (MoPoE): one component per non-empty subset of modalities."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import torch

from mosaicvi.nn._posterior import FusedPosterior
from mosaicvi.nn._product_of_experts import ExpertFusion, gaussian_product

if TYPE_CHECKING:
    from collections.abc import Sequence


def modality_subsets(n_modalities: int) -> torch.Tensor:
    """Boolean ``(2^M - 1, M)`` matrix of every non-empty subset of ``M`` modalities."""
    rows = [
        [i in subset for i in range(n_modalities)]
        for size in range(1, n_modalities + 1)
        for subset in itertools.combinations(range(n_modalities), size)
    ]
    return torch.tensor(rows, dtype=torch.bool)


class MixtureOfProductsOfExperts(ExpertFusion):
    """Fusion by a uniform mixture over the products of every subset of present experts.

    MoPoE-VAE (Sutter et al. 2021): ``q(z | x) = 1/|S_n| sum_{s in S_n} PoE(q_m : m in s)``,
    where ``S_n`` are the non-empty subsets of the modalities cell ``n`` measured; it contains
    the mixture of experts (singletons) and the product of experts (the full set). Subset
    products have no prior expert, so the singletons are the modality experts themselves. The
    loss samples every component (stratified, as for the mixture of experts). A modality's
    weight is its precision share, averaged over the components.

    Takes the arguments of :class:`ExpertFusion`.
    """

    def __init__(self, modalities: Sequence[str], n_input: int, n_latent: int):
        super().__init__(modalities, n_input, n_latent)
        self.register_buffer("subsets", modality_subsets(len(self.experts.modalities)))

    def forward(self, embeddings: torch.Tensor, presence: torch.Tensor) -> FusedPosterior:
        """Posterior from ``embeddings`` ``(n_cells, n_modalities, n_input)`` and ``presence``."""
        locs, variances = self.experts(embeddings)
        subsets = self.subsets  # (S, M)
        # A subset is a component of a cell when all its modalities are present.
        valid = (subsets.unsqueeze(0) & ~presence.unsqueeze(1)).sum(-1) == 0  # (n, S)
        mask = subsets.unsqueeze(0) & presence.unsqueeze(1)  # (n, S, M)
        loc, variance, shares = gaussian_product(
            locs.unsqueeze(1), variances.unsqueeze(1), mask, prior_expert=False
        )
        weights = valid.to(locs.dtype)
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1.0)
        modality_weights = (weights.unsqueeze(-1) * shares).sum(1)
        return FusedPosterior(loc, variance.sqrt(), weights, modality_weights)
