"""Per-cell negative log-likelihoods of the count models, summed over features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi.distributions import NegativeBinomial, ZeroInflatedNegativeBinomial

from mosaicvi.nn._sparse import is_sparse, row_ids


def negative_binomial_nll(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """NB with mean ``mu`` and inverse dispersion ``theta``; ``x`` dense ``(n, F)``."""
    return -NegativeBinomial(mu=mu, theta=theta).log_prob(x).sum(-1)


def zero_inflated_negative_binomial_nll(
    x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, zi_logits: torch.Tensor
) -> torch.Tensor:
    """ZINB with zero-inflation logits ``zi_logits``; ``x`` dense ``(n, F)``."""
    distribution = ZeroInflatedNegativeBinomial(mu=mu, theta=theta, zi_logits=zi_logits)
    return -distribution.log_prob(x).sum(-1)


def bernoulli_nll(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Bernoulli on ``x > 0``; ``x`` dense or CSR with rows matching ``logits``.

    Uses ``-log p(x) = sum_j softplus(l_j) - sum_{j: x_j > 0} l_j``, so a sparse ``x`` is never
    densified.
    """
    nll = F.softplus(logits).sum(-1)
    if is_sparse(x):
        rows = row_ids(x)
        observed = logits[rows, x.col_indices()] * (x.values() > 0).to(logits.dtype)
        return nll.index_add(0, rows, -observed)
    return nll - ((x > 0).to(logits.dtype) * logits).sum(-1)
