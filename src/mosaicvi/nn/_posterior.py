"""The fused posterior ``q(z | x_available)``: one Gaussian, or a mixture of Gaussian components."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.distributions import Normal


@dataclass
class FusedPosterior:
    """``q(z | x) = sum_c pi_c N(loc_c, scale_c^2)`` for each cell, with per-modality weights.

    Attention and product-of-experts fusions give one component (``n_components == 1``);
    mixture fusions give one component per expert (or subset of experts), with weight 0 for
    components that use a modality the cell lacks.

    Attributes
    ----------
    locs
        Component means ``(n_cells, n_components, n_latent)``.
    scales
        Component standard deviations, same shape.
    component_weights
        Mixture weights ``(n_cells, n_components)``; rows sum to 1.
    modality_weights
        Share of each modality in each cell's posterior ``(n_cells, n_modalities)``: 0 for
        missing modalities, rows sum to 1 over the present ones.
    """

    locs: torch.Tensor
    scales: torch.Tensor
    component_weights: torch.Tensor
    modality_weights: torch.Tensor

    @classmethod
    def gaussian(
        cls, loc: torch.Tensor, scale: torch.Tensor, modality_weights: torch.Tensor
    ) -> FusedPosterior:
        """A single Gaussian posterior ``N(loc, scale^2)``."""
        return cls(
            loc.unsqueeze(1), scale.unsqueeze(1), loc.new_ones(loc.shape[0], 1), modality_weights
        )

    @property
    def n_components(self) -> int:
        """Number of mixture components (1 for a Gaussian posterior)."""
        return self.locs.shape[1]

    def moment_matched(self) -> Normal:
        """The Gaussian with the mixture's mean and (diagonal) variance: the point estimate."""
        w = self.component_weights.unsqueeze(-1)
        mean = (w * self.locs).sum(1)
        second = (w * (self.scales.square() + self.locs.square())).sum(1)
        variance = (second - mean.square()).clamp_min(1e-8)
        return Normal(mean, variance.sqrt())

    def sample(self, n_samples: int = 1) -> torch.Tensor:
        """Reparameterised samples ``(n_cells, n_latent)`` or ``(n_samples, n_cells, n_latent)``.

        For a mixture, each sample first draws its component from the mixture weights.
        """
        shape = () if n_samples == 1 else (n_samples,)
        if self.n_components == 1:
            return Normal(self.locs[:, 0], self.scales[:, 0]).rsample(shape)
        component = torch.distributions.Categorical(probs=self.component_weights).sample(shape)
        index = (
            component.unsqueeze(-1).unsqueeze(-1).expand(*component.shape, 1, self.locs.shape[-1])
        )
        locs = self.locs.expand(*shape, *self.locs.shape).gather(-2, index).squeeze(-2)
        scales = self.scales.expand(*shape, *self.scales.shape).gather(-2, index).squeeze(-2)
        return Normal(locs, scales).rsample()

    def stratified_sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One reparameterised sample from every component with positive weight (MMVAE).

        Returns ``(z, cell_index, weight)``: ``z[r]`` is drawn from component ``c`` of cell
        ``cell_index[r]``, and ``weight[r]`` is that component's mixture weight, so
        ``sum_r weight[r] f(z[r])`` per cell is the stratified estimate of ``E_q[f(z)]``. With one
        component this is one sample per cell, in cell order, with weight 1.
        """
        if self.n_components == 1:
            z = Normal(self.locs[:, 0], self.scales[:, 0]).rsample()
            cells = torch.arange(z.shape[0], device=z.device)
            return z, cells, z.new_ones(z.shape[0])
        cells, components = torch.nonzero(self.component_weights > 0, as_tuple=True)
        z = Normal(self.locs[cells, components], self.scales[cells, components]).rsample()
        return z, cells, self.component_weights[cells, components]

    def log_prob(self, z: torch.Tensor, cell_index: torch.Tensor) -> torch.Tensor:
        """``log q(z_r | x_{cell_index[r]})``, summed over latent dimensions, one value per row."""
        log_density = (
            Normal(self.locs[cell_index], self.scales[cell_index]).log_prob(z.unsqueeze(1)).sum(-1)
        )
        weights = self.component_weights[cell_index]
        log_weights = torch.where(weights > 0, weights.clamp_min(1e-30).log(), -math.inf)
        return torch.logsumexp(log_density + log_weights, dim=1)
