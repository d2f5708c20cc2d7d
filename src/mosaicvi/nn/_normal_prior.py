"""Standard normal prior ``p(z) = N(0, I)`` and its KL term."""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from mosaicvi.nn._posterior import FusedPosterior


class StandardNormalPrior(nn.Module):
    """``p(z) = N(0, I)``.

    The KL is exact for a Gaussian posterior and a Monte-Carlo estimate (``log q(z) - log p(z)``
    at the stratified samples) for a mixture posterior.
    """

    def kl_terms(
        self,
        posterior: FusedPosterior,
        z: torch.Tensor,
        cell_index: torch.Tensor,
        weight: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-cell KL ``{"kl_z": (n_cells,)}`` (``labels`` is unused).

        ``z``, ``cell_index`` and ``weight`` are :meth:`FusedPosterior.stratified_sample`'s output.
        """
        if posterior.n_components == 1:
            qz = Normal(posterior.locs[:, 0], posterior.scales[:, 0])
            prior = Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))
            return {"kl_z": kl_divergence(qz, prior).sum(-1)}
        log_p = Normal(torch.zeros_like(z), torch.ones_like(z)).log_prob(z).sum(-1)
        per_sample = weight * (posterior.log_prob(z, cell_index) - log_p)
        n_cells = posterior.locs.shape[0]
        total = z.new_zeros(n_cells, dtype=torch.float32)
        return {"kl_z": total.index_add(0, cell_index, per_sample.float())}
