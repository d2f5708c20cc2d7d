"""Fusion of the modality embeddings a cell has into ``q(z | x_available)``, chosen by name.

``"attention"`` (default): masked gated attention (mmAAVI's auto-scaling attention);
``"poe"``: product of Gaussian experts with a prior expert; ``"moe"``: mixture of experts;
``"mopoe"``: mixture of products of experts. Every fusion ignores the modalities a cell lacks and
reports each modality's weight in each cell's posterior.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from mosaicvi._choices import check_choice
from mosaicvi.nn._mixture_of_experts import MixtureOfExperts
from mosaicvi.nn._mixture_of_products import MixtureOfProductsOfExperts
from mosaicvi.nn._posterior import FusedPosterior
from mosaicvi.nn._product_of_experts import MIN_VARIANCE, ProductOfExperts

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

#: The names of :data:`FUSIONS`, for type hints.
FusionName = Literal["attention", "poe", "moe", "mopoe"]


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


class AttentionFusion(nn.Module):
    """Masked gated attention over the embeddings, then one Gaussian head: ``q(z | x)``.

    The modality weights are the attention weights.

    Parameters
    ----------
    n_input
        Size of each modality embedding.
    n_latent
        Dimension of z.
    n_attention
        Width of the attention scorer.
    """

    def __init__(self, n_input: int, n_latent: int, n_attention: int = 128):
        super().__init__()
        self.attention = MaskedGatedAttention(n_input, n_attention)
        self.z_mean = nn.Linear(n_input, n_latent)
        self.z_var = nn.Linear(n_input, n_latent)

    def forward(self, embeddings: torch.Tensor, presence: torch.Tensor) -> FusedPosterior:
        """Posterior from ``embeddings`` ``(n_cells, n_modalities, n_input)`` and ``presence``."""
        fused, weights = self.attention(embeddings, presence)
        variance = F.softplus(self.z_var(fused)) + MIN_VARIANCE
        return FusedPosterior.gaussian(self.z_mean(fused), variance.sqrt(), weights)


def make_fusion(
    name: str, modalities: Sequence[str], n_input: int, n_latent: int, n_attention: int = 128
) -> nn.Module:
    """The fusion module called ``name`` (one of :data:`FUSIONS`).

    Each maps embeddings ``(n_cells, n_modalities, n_input)`` and a boolean presence mask to a
    :class:`~mosaicvi.nn.FusedPosterior`.

    Examples
    --------
    >>> fusion = make_fusion("poe", ["rna", "atac"], n_input=8, n_latent=4)
    >>> posterior = fusion(torch.randn(3, 2, 8), torch.tensor([[1, 1], [1, 0], [0, 1]]).bool())
    >>> torch.allclose(posterior.modality_weights.sum(1), torch.ones(3))
    True
    """
    return FUSIONS[check_choice("fusion", name, FUSIONS)](
        modalities, n_input, n_latent, n_attention
    )


#: Fusions by name (``MosaicVI(fusion=...)``): ``(modalities, n_input, n_latent, n_attention)``
#: -> module.
FUSIONS: dict[str, Callable[[Sequence[str], int, int, int], nn.Module]] = {
    "attention": lambda modalities, n_input, n_latent, n_attention: AttentionFusion(
        n_input, n_latent, n_attention
    ),
    "poe": lambda modalities, n_input, n_latent, _: ProductOfExperts(
        modalities, n_input, n_latent
    ),
    "moe": lambda modalities, n_input, n_latent, _: MixtureOfExperts(
        modalities, n_input, n_latent
    ),
    "mopoe": lambda modalities, n_input, n_latent, _: MixtureOfProductsOfExperts(
        modalities, n_input, n_latent
    ),
}
