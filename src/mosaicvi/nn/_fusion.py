"""Masked gated-attention fusion of the modality embeddings a cell has (mmAAVI's auto-scaling)."""

from __future__ import annotations

import torch
from torch import nn


class MaskedGatedAttention(nn.Module):
    """Gated attention pooling over modalities, renormalised over the modalities present.

    ``score_m = w^T (tanh(V e_m) * sigmoid(U e_m))`` (Ilse et al., 2018), ``-inf`` for a missing
    modality, then a softmax over modalities, so any subset of modalities maps into the same space.
    Unlike mmAAVI's scorer, the score is not squashed into (-1, 1), so weights are not bounded to
    a ratio of e^2.

    Parameters
    ----------
    n_input
        Size of each modality embedding.
    n_attention
        Width of the attention scorer.
    """

    def __init__(self, n_input: int, n_attention: int = 128):
        super().__init__()
        self.value = nn.Linear(n_input, n_attention)
        self.gate = nn.Linear(n_input, n_attention)
        self.score = nn.Linear(n_attention, 1)

    def forward(
        self, embeddings: torch.Tensor, presence: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse ``embeddings`` ``(n_cells, n_modalities, n_input)`` under a boolean ``presence``.

        Returns
        -------
        The fused embedding ``(n_cells, n_input)`` and the weights ``(n_cells, n_modalities)``,
        which are 0 for missing modalities and sum to 1 over present ones.
        """
        scores = self.score(
            torch.tanh(self.value(embeddings)) * torch.sigmoid(self.gate(embeddings))
        )
        scores = scores.squeeze(-1).masked_fill(~presence, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
        fused = torch.einsum("nm,nmh->nh", weights, embeddings)
        return fused, weights
