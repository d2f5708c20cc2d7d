"""Per-modality encoder: input transform, then a sparse-aware MLP to a shared embedding size."""

from __future__ import annotations

import torch
from torch import nn

from mosaicvi.nn._input_transforms import CenteredLogRatio, TfIdfWithLsi
from mosaicvi.nn._mlp import hidden_stack
from mosaicvi.nn._sparse import SparseInputLinear, scale_rows, to_dense


class ModalityEncoder(nn.Module):
    """Embed one modality's counts: ``transform -> Linear -> [LayerNorm, ReLU, Dropout] x n_layers``.

    Parameters
    ----------
    n_features
        Number of features of the modality.
    transform
        Module applied to the raw counts first (see :mod:`mosaicvi.nn._input_transforms`).
    n_hidden
        Width of the hidden layers and of the output embedding.
    n_layers
        Number of hidden layers (at least 1).
    dropout_rate
        Dropout after each hidden layer.
    n_batch
        Batches of a batch-conditioned encoder (scArches' conditional encoder): a learnt vector
        per batch, starting at zero, is added to the first layer's output, as a one-hot batch
        concatenated to the input would. ``0`` (default): the encoder does not see the batch.
    """

    def __init__(
        self,
        n_features: int,
        transform: nn.Module,
        n_hidden: int = 256,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
        n_batch: int = 0,
    ):
        super().__init__()
        if n_layers < 1:
            raise ValueError("`n_layers` of an encoder must be at least 1.")
        self.transform = transform
        # ``lsi`` changes the width (``n_output``); ``tfidf_lsi`` returns (per-feature, LSI) views,
        # each with its own first layer, summed.
        self.two_views = isinstance(transform, TfIdfWithLsi)
        n_input = n_features if self.two_views else getattr(transform, "n_output", n_features)
        self.input_layer = SparseInputLinear(n_input, n_hidden)
        self.lsi_layer = nn.Linear(transform.n_output, n_hidden) if self.two_views else None
        self.input_block = nn.Sequential(
            nn.LayerNorm(n_hidden), nn.ReLU(), nn.Dropout(dropout_rate)
        )
        self.hidden = hidden_stack(n_hidden, n_hidden, n_layers - 1, dropout_rate)
        self.batch_embedding = None
        if n_batch > 0:
            self.batch_embedding = nn.Embedding(n_batch, n_hidden)
            nn.init.zeros_(self.batch_embedding.weight)

    def forward(
        self,
        x: torch.Tensor,
        feature_mask: torch.Tensor | None = None,
        batch_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Embed dense or CSR counts ``(n_cells, n_features)`` into ``(n_cells, n_hidden)``.

        ``feature_mask`` (cells x features, ``True`` = measured; ``None``: all): the entries of
        ``x`` a cell's batch did not measure must be zero; the per-feature input is then scaled
        by ``n_features / n_measured`` per cell (masked input scaling, as inverted dropout), so
        a cell measured on a small panel enters the first layer on the scale of a full one.
        Transforms that pool features per cell (CLR's mean) pool the measured ones only.
        ``batch_index`` ``(n_cells,)`` or ``(n_cells, 1)``: each cell's batch (needed, and only
        used, when the encoder is batch-conditioned).
        """
        with torch.no_grad():
            if feature_mask is None:
                x = self.transform(x)
            else:
                x = masked_transform(self.transform, x, feature_mask)
        if self.two_views:
            h = self.input_layer(x[0]) + self.lsi_layer(x[1])
        else:
            h = self.input_layer(x)
        if self.batch_embedding is not None:
            if batch_index is None:
                raise ValueError("A batch-conditioned encoder needs each cell's `batch_index`.")
            h = h + self.batch_embedding(batch_index.reshape(-1).long())
        return self.hidden(self.input_block(h))


def masked_transform(
    transform: nn.Module, x: torch.Tensor, feature_mask: torch.Tensor
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``transform(x)`` for cells that measured only the features in ``feature_mask``.

    Per-feature outputs are scaled by each cell's ``n_features / n_measured``; LSI components
    (dense, standardised per cell) are left as they are.
    """
    if isinstance(transform, CenteredLogRatio):
        logged = torch.log1p(to_dense(x))
        measured = feature_mask.to(logged.dtype)
        mean = (logged * measured).sum(-1, keepdim=True) / measured.sum(-1, keepdim=True).clamp(
            min=1.0
        )
        out = (logged - mean) * measured
    else:
        out = transform(x)
    scale = feature_mask.shape[1] / feature_mask.sum(-1).clamp(min=1).to(torch.float32)
    if isinstance(out, tuple):  # (per-feature TF-IDF, LSI)
        return scale_rows(out[0], scale), out[1]
    if out.shape[1] != feature_mask.shape[1]:  # LSI components
        return out
    return scale_rows(out, scale)
