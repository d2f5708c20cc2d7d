"""Closed-feature sampling: an unbiased, cheaper Bernoulli reconstruction term for wide modalities.

The Bernoulli negative log-likelihood of a cell is ``sum_j softplus(l_j) - sum_{j open} l_j``.
Its second sum only touches open features, but the first needs a logit for every feature, and
computing those logits (the decoder's last layer, forward and backward) is most of a training
step on ATAC. Most peaks are closed in every cell of a minibatch. Decoding all features open in
some cell of the minibatch plus a random fraction ``p`` of the others, and weighting each
sampled closed feature by ``1 / p``, gives an unbiased estimate of the same loss (and of its
gradient) at a fraction of the cost.

On an accelerator the number of features this keeps is only known after reading the data
back (``torch.nonzero``), a host sync each step. With a ``capacity``, a fixed number of
features is decoded instead, without reading anything back: every kept feature while they fit
(the rest of the capacity are padding features of weight 0, so the estimate is *the same*),
otherwise a uniform random subset of the kept open features and of the kept closed ones (at
least one), each weighted by the inverse of its chance to be decoded: still unbiased, with a
larger variance for that step only.
"""

from __future__ import annotations

import torch

from mosaicvi.nn._sparse import is_sparse

#: Capacity of the fixed-size samples, as a multiple of the features kept in the first one.
CAPACITY_MARGIN = 1.25


def feature_capacity(n_kept: int, n_features: int) -> int:
    """Fixed sample size for later steps, from the ``n_kept`` features of a first variable one.

    :data:`CAPACITY_MARGIN` times ``n_kept``, rounded up to a multiple of 64, at most
    ``n_features``: the kept features of a minibatch vary by a few percent between minibatches
    of one size, so nearly every step decodes all its kept features (the same estimate as
    without a capacity); a step that keeps more stays unbiased.
    """
    return min(n_features, -(-int(CAPACITY_MARGIN * n_kept) // 64) * 64)


class FeatureColumns(tuple):
    """``(columns, weight)``: the sorted features a step decodes and each one's loss weight.

    ``weighted_open``: whether the weights apply to the open features' terms too, some of which
    may be left out (a fixed-size sample); otherwise every open feature is decoded at weight 1.
    """

    def __new__(cls, columns: torch.Tensor, weight: torch.Tensor, weighted_open: bool = False):
        sample = super().__new__(cls, (columns, weight))
        sample.weighted_open = weighted_open
        return sample

    @property
    def columns(self) -> torch.Tensor:
        """Sorted feature indices."""
        return self[0]

    @property
    def weight(self) -> torch.Tensor:
        """Weight of each feature in the loss."""
        return self[1]


def sample_feature_columns(
    x: torch.Tensor, fraction: float, capacity: int | None = None
) -> FeatureColumns:
    """Features of a minibatch to decode, and the weight of each in the loss.

    Parameters
    ----------
    x
        Minibatch counts ``(n_cells, n_features)``, dense or CSR.
    fraction
        Probability ``p`` in ``(0, 1]`` of keeping each feature that no cell of the minibatch has
        open.
    capacity
        Decode exactly ``min(capacity, n_features)`` features (no host sync). ``None``: decode
        the kept features, however many (their count is read back from the device).

    Returns
    -------
    :class:`FeatureColumns`: ``columns``, sorted indices of the decoded features (every feature
    open in some cell, plus the sampled closed ones; with ``capacity``: as many of them as fit,
    plus padding); ``weight`` ``(len(columns),)``, 1 for the open features and ``1 / p`` for
    the sampled closed ones (with ``capacity``: 0 for padding, inverse decoding chances beyond
    the capacity); ``weighted_open``, true with ``capacity``.
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
    draw = torch.rand(n_features, device=x.device)
    if capacity is None:
        columns = torch.nonzero(is_open | (draw < fraction), as_tuple=True)[0]
        weight = torch.where(is_open[columns], 1.0, 1.0 / fraction)
        return FeatureColumns(columns, weight)
    return _fixed_size_columns(is_open, ~is_open & (draw < fraction), draw, fraction, capacity)


def _fixed_size_columns(
    is_open: torch.Tensor, closed: torch.Tensor, draw: torch.Tensor, fraction: float, capacity: int
) -> FeatureColumns:
    """``capacity`` features: open ones first, then the sampled ``closed`` ones, then padding.

    Priorities: one sampled closed feature (the one of smallest ``draw``, a uniform pick), then
    the open features, then the other sampled closed ones, then the rest; within a group by
    ``draw``, a uniform random order (given the group, the draws are i.i.d. uniform), so each
    group's decoded features are a uniform random subset of it. Horvitz-Thompson weights
    (group size / decoded count) keep the estimate unbiased.
    """
    capacity = min(capacity, is_open.shape[0])
    priority = draw + 2.0 * is_open + closed.to(draw.dtype)
    first_closed = torch.argmin(torch.where(closed, draw, 2.0))
    priority = priority.index_put((first_closed[None],), closed[first_closed][None] * 4.0, True)
    columns = torch.topk(priority, capacity, sorted=False).indices.sort().values
    open_kept, closed_kept = is_open[columns], closed[columns]
    n_open, n_closed = is_open.sum(), closed.sum()
    open_weight = n_open / open_kept.sum().clamp(min=1)
    closed_weight = n_closed / closed_kept.sum().clamp(min=1) * (1.0 / fraction)
    weight = torch.where(open_kept, open_weight, torch.where(closed_kept, closed_weight, 0.0))
    return FeatureColumns(columns, weight.float(), weighted_open=True)
