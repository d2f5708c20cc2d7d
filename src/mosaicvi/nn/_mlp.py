"""Fully connected blocks with LayerNorm (BatchNorm would see the zero rows of missing modalities)."""

from __future__ import annotations

from torch import nn


def hidden_block(n_in: int, n_out: int, dropout_rate: float) -> nn.Sequential:
    """``Linear -> LayerNorm -> ReLU -> Dropout``."""
    return nn.Sequential(
        nn.Linear(n_in, n_out),
        nn.LayerNorm(n_out),
        nn.ReLU(),
        nn.Dropout(dropout_rate),
    )


def hidden_stack(n_in: int, n_hidden: int, n_layers: int, dropout_rate: float) -> nn.Sequential:
    """``n_layers`` hidden blocks of width ``n_hidden`` (an identity when ``n_layers`` is 0)."""
    sizes = [n_in] + [n_hidden] * n_layers
    return nn.Sequential(
        *(hidden_block(a, b, dropout_rate) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    )
