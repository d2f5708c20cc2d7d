"""Classifier on the latent space: ``q(c | z)`` for the mixture prior and for cell labels."""

from __future__ import annotations

import torch
from torch import nn

from mosaicvi.nn._mlp import hidden_stack


class LatentClassifier(nn.Module):
    """MLP from ``z`` to class logits: ``Linear -> LayerNorm -> ReLU -> Dropout -> Linear``.

    Parameters
    ----------
    n_latent
        Dimension of z.
    n_classes
        Number of classes (labels, or clusters of the mixture prior).
    n_hidden
        Width of the hidden layer (mmAAVI uses 50).
    dropout_rate
        Dropout after the hidden layer.
    """

    def __init__(
        self, n_latent: int, n_classes: int, n_hidden: int = 50, dropout_rate: float = 0.0
    ):
        super().__init__()
        self.hidden = hidden_stack(n_latent, n_hidden, 1, dropout_rate)
        self.output = nn.Linear(n_hidden, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(n_cells, n_classes)``."""
        return self.output(self.hidden(z))
