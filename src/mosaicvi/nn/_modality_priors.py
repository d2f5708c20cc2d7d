"""Modality-specific priors: each modality's unimodal posterior regularised toward its own prior."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mosaicvi.nn._mixture_prior import MixturePrior

if TYPE_CHECKING:
    from collections.abc import Sequence


class ModalityPriors(nn.Module):
    """One learnable mixture prior ``p_m(z)`` per modality, for the unimodal posteriors ``q(z | x_m)``.

    For every cell and every modality ``m`` it measured, the fusion is applied to modality ``m``
    alone (its expert, for the product and mixture fusions), and the KL of that unimodal posterior
    to ``p_m`` (a :class:`~mosaicvi.nn.MixturePrior`: discrete cluster, continuous code, learnt
    ``p(z | c, u)``) is added to the cell's KL, next to the KL of the fused posterior to the shared
    prior. Each modality's view of a cell is thereby pulled toward a clustered region of its own,
    learnt from that modality's cells, while the fused posterior keeps the shared prior.

    Parameters
    ----------
    modalities
        Modality names, in the column order of the presence mask.
    n_latent
        Dimension of z.
    n_clusters
        Components of each modality's mixture prior (at least the number of label classes; with
        labels the first components are the classes, as for ``prior="mixture"``).

    Examples
    --------
    >>> from mosaicvi.nn import make_fusion
    >>> fusion = make_fusion("attention", ["rna", "atac"], n_input=8, n_latent=4)
    >>> priors = ModalityPriors(["rna", "atac"], n_latent=4, n_clusters=3)
    >>> presence = torch.tensor([[True, True], [True, False]])
    >>> kl = priors.kl_terms(fusion, torch.randn(2, 2, 8), presence)
    >>> kl["kl_modality"].shape
    torch.Size([2])
    """

    def __init__(self, modalities: Sequence[str], n_latent: int, n_clusters: int):
        super().__init__()
        self.modality_names = list(modalities)
        self.priors = nn.ModuleDict({m: MixturePrior(n_latent, n_clusters) for m in modalities})

    def kl_terms(
        self,
        fusion: nn.Module,
        embeddings: torch.Tensor,
        presence: torch.Tensor,
        labels: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"kl_modality": (n_cells,)}``: per cell, the sum over its modalities of the KL terms.

        ``embeddings`` ``(n_cells, n_modalities, n_hidden)`` are the encoder outputs, ``presence``
        the boolean mask of measured modalities, ``labels`` each cell's class or ``-1``.
        """
        total = embeddings.new_zeros(embeddings.shape[0], dtype=torch.float32)
        for i, m in enumerate(self.modality_names):
            cells = torch.nonzero(presence[:, i], as_tuple=True)[0]
            if cells.numel() == 0:
                continue
            only_m = torch.zeros_like(presence[cells])
            only_m[:, i] = True
            posterior = fusion(embeddings[cells], only_m)
            z, cell_index, weight = posterior.stratified_sample()
            terms = self.priors[m].kl_terms(
                posterior, z, cell_index, weight, None if labels is None else labels[cells]
            )
            total = total.index_add(0, cells, torch.stack(list(terms.values())).sum(0).float())
        return {"kl_modality": total}
