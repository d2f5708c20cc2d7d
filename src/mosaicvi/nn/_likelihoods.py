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


def bernoulli_nll(
    x: torch.Tensor,
    logits: torch.Tensor,
    columns: torch.Tensor | None = None,
    column_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """Bernoulli on ``x > 0``; ``x`` dense or CSR with rows matching ``logits``.

    Uses ``-log p(x) = sum_j softplus(l_j) - sum_{j: x_j > 0} l_j``, so a sparse ``x`` is never
    densified. With ``columns`` (sorted feature indices that include every feature open in
    ``x``; see :func:`~mosaicvi.nn._feature_sampling.sample_feature_columns`), ``logits`` hold
    only those features and the first sum is weighted by ``column_weight``.
    """
    terms = F.softplus(logits)
    nll = terms.sum(-1) if column_weight is None else terms @ column_weight.to(terms.dtype)
    if is_sparse(x):
        rows = row_ids(x)
        cols = x.col_indices()
        if columns is not None:
            cols = torch.searchsorted(columns, cols)
        observed = logits[rows, cols] * (x.values() > 0).to(logits.dtype)
        return nll.index_add(0, rows, -observed)
    if columns is not None:
        x = x[:, columns]
    return nll - ((x > 0).to(logits.dtype) * logits).sum(-1)
