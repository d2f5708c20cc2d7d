"""Closed-feature sampling: an unbiased, cheaper Bernoulli reconstruction term for wide modalities.

The Bernoulli negative log-likelihood of a cell is ``sum_j softplus(l_j) - sum_{j open} l_j``.
Its second sum only touches open features, but the first needs a logit for every feature, and
computing those logits (the decoder's last layer, forward and backward) is most of a training
step on ATAC. Most peaks are closed in every cell of a minibatch. Decoding all features open in
some cell of the minibatch plus a random fraction ``p`` of the others, and weighting each
sampled closed feature by ``1 / p``, gives an unbiased estimate of the same loss (and of its
gradient) at a fraction of the cost.
"""

from __future__ import annotations

import torch

from mosaicvi.nn._sparse import is_sparse


def sample_feature_columns(x: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of a minibatch to decode, and the weight of each in the loss.

    Parameters
    ----------
    x
        Minibatch counts ``(n_cells, n_features)``, dense or CSR.
    fraction
        Probability ``p`` in ``(0, 1]`` of keeping each feature that no cell of the minibatch has
        open.

    Returns
    -------
    columns
        Sorted indices of the kept features: every feature open in some cell, plus the sampled
        closed ones.
    weight
        ``(len(columns),)``: 1 for the open features, ``1 / p`` for the sampled closed ones.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"`fraction` must be in (0, 1], got {fraction}.")
    n_features = x.shape[1]
    if is_sparse(x):
        # Stored entries count as open (set-up prunes explicit zeros; a column kept at weight 1
        # is exact either way), which spares a value mask and its device sync.
        is_open = torch.zeros(n_features, dtype=torch.bool, device=x.device)
        is_open[x.col_indices()] = True
    else:
        is_open = (x > 0).any(dim=0)
    keep = is_open | (torch.rand(n_features, device=x.device) < fraction)
    columns = torch.nonzero(keep, as_tuple=True)[0]
    weight = torch.where(is_open[columns], 1.0, 1.0 / fraction)
    return columns, weight
