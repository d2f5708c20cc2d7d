"""Mixture of Gaussian experts (MMVAE): one component per present modality, equal weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mosaicvi.nn._posterior import FusedPosterior
from mosaicvi.nn._product_of_experts import ExpertFusion

if TYPE_CHECKING:
    pass


class MixtureOfExperts(ExpertFusion):
    """Fusion by a uniform mixture of the present modalities' experts (MMVAE, Shi et al. 2019).

    ``q(z | x) = 1/|M_n| sum_{m in M_n} q_m(z | x_m)`` over the modalities ``M_n`` cell ``n``
    measured. The loss uses stratified sampling (one sample from every expert of a cell, each
    reconstructing all the cell's modalities, weighted by ``1/|M_n|``), so every expert learns to
    explain the other modalities. Modality weights are the mixture weights.

    Takes the arguments of :class:`ExpertFusion`.
    """

    def forward(self, embeddings: torch.Tensor, presence: torch.Tensor) -> FusedPosterior:
        """Posterior from ``embeddings`` ``(n_cells, n_modalities, n_input)`` and ``presence``."""
        locs, variances = self.experts(embeddings)
        weights = presence.to(locs.dtype)
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1.0)
        return FusedPosterior(locs, variances.sqrt(), weights, weights)
