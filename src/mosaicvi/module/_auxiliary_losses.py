"""Loss terms beside the ELBO: classification of labelled cells and the cross-modal term."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS

from mosaicvi._constants import modality_registry_key
from mosaicvi.nn._sparse import gather_rows

if TYPE_CHECKING:
    from collections.abc import Iterator


class AuxiliaryLossesMixin:
    """Optional loss terms of :class:`~mosaicvi.module.MosaicVAE` (see its ``loss``)."""

    def classification_loss(self, inference_outputs: dict, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``q(label | z)`` over the labelled cells (0 when there are none).

        The classifier reads the posterior mean, as :meth:`~mosaicvi.MosaicVI.predict` does (and
        as scANVI; with 1 % of cells labelled, fitting it on noisy samples learnt much slower).
        """
        labelled = torch.nonzero(labels >= 0, as_tuple=True)[0]
        if labelled.numel() == 0:
            return inference_outputs["qz"].loc.new_zeros(())
        logits = self.class_logits(inference_outputs["qz"].loc[labelled])
        return F.cross_entropy(logits, labels[labelled])

    def cross_modal_decodings(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict, generative_outputs: dict
    ) -> Iterator[tuple[str, torch.Tensor, dict[str, torch.Tensor]]]:
        """``(modality j, cells, params)``: ``j`` decoded from ``q(z | x_i)`` for each ``i != j``.

        Only cells with several modalities take part; each modality ``i`` alone is passed through
        the fusion (its expert, for the product and mixture fusions) and one sample decodes every
        other modality ``j`` the cell has, at the cell's batch and observed library of ``j``.
        """
        embeddings = inference_outputs["embeddings"]
        present = inference_outputs["presence"]
        batch_index = tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long()
        cat_covs = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
        v = generative_outputs.get("v")
        multi = present.sum(1) > 1
        for i in range(len(self.modality_names)):
            cells = torch.nonzero(present[:, i] & multi, as_tuple=True)[0]
            if cells.numel() == 0:
                continue
            only_i = torch.zeros_like(present[cells])
            only_i[:, i] = True
            z = self.fusion(embeddings[cells], only_i).sample()
            for j, m in enumerate(self.modality_names):
                rows = torch.nonzero(present[cells, j], as_tuple=True)[0] if j != i else None
                if rows is None or rows.numel() == 0:
                    continue
                target = cells[rows]
                px = self.decoders[m](
                    z[rows],
                    batch_index[target],
                    inference_outputs["library"][m][target],
                    None if cat_covs is None else cat_covs[target],
                    None if v is None else v[slice(*self.feature_slices[m])],
                )
                yield m, target, px

    def cross_modal_loss(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict, generative_outputs: dict
    ) -> torch.Tensor:
        """Mean over cells of the NLL of each modality ``j`` decoded from ``q(z | x_i)``, ``i != j``.

        Only cells with several modalities contribute (0 for the others); see
        :meth:`cross_modal_decodings`.
        """
        total = inference_outputs["embeddings"].new_zeros(inference_outputs["presence"].shape[0])
        for m, target, px in self.cross_modal_decodings(
            tensors, inference_outputs, generative_outputs
        ):
            x = gather_rows(tensors[modality_registry_key(m)], target)
            total = total.index_add(0, target, self.decoders[m].negative_log_likelihood(x, px))
        return total.mean()
