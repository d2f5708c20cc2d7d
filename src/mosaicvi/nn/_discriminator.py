"""Batch discriminator on the latent space, trained through a gradient-reversal layer."""

from __future__ import annotations

import torch
from torch import nn

from mosaicvi.nn._mlp import hidden_stack


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, strength: float) -> torch.Tensor:
        ctx.strength = strength
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.strength * grad_output, None


def reverse_gradient(x: torch.Tensor, strength: float) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-strength`` backward."""
    return _GradientReversal.apply(x, strength)


class BatchDiscriminator(nn.Module):
    """MLP that predicts the batch of a cell from its latent code.

    Placed behind :func:`reverse_gradient`, one optimiser step trains it to recognise batches while
    the encoder is pushed, ``strength`` times as hard, to make them indistinguishable.

    Parameters
    ----------
    n_input
        Latent dimension.
    n_batch
        Number of batches (classes).
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of hidden layers.
    dropout_rate
        Dropout after each hidden layer.
    """

    def __init__(
        self,
        n_input: int,
        n_batch: int,
        n_hidden: int = 128,
        n_layers: int = 2,
        dropout_rate: float = 0.1,
    ):
        super().__init__()
        self.hidden = hidden_stack(n_input, n_hidden, n_layers, dropout_rate)
        self.output = nn.Linear(n_hidden if n_layers > 0 else n_input, n_batch)

    def forward(self, z: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
        """Batch logits for ``z``, with the gradient to ``z`` reversed and scaled by ``strength``."""
        return self.output(self.hidden(reverse_gradient(z, strength)))
