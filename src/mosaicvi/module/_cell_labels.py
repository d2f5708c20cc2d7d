"""Labels of :class:`~mosaicvi.module.MosaicVAE`: which cells are labelled, logits, cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS

from mosaicvi._constants import MODULE_KEYS


class CellLabelsMixin:
    """Semi-supervised labels of :class:`~mosaicvi.module.MosaicVAE` (codes ``>= n_labels``: none)."""

    @property
    def is_semi_supervised(self) -> bool:
        """Whether the module is trained with (some) cell labels."""
        return self.n_labels > 0

    def class_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the labels (or clusters, for the mixture prior) given ``z``."""
        if self.prior_name == "mixture":
            return self.prior.cluster_logits(z)
        if self.classifier is None:
            raise ValueError("This module has neither labels nor a mixture prior.")
        return self.classifier(z)

    def cell_labels(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Label code of each cell, ``-1`` for unlabelled cells (``None`` without labels)."""
        if not self.is_semi_supervised:
            return None
        codes = tensors[REGISTRY_KEYS.LABELS_KEY].reshape(-1).long()
        return torch.where(codes < self.n_labels, codes, torch.full_like(codes, -1))

    def classification_loss(self, inference_outputs: dict, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``q(label | z)`` over the labelled cells (0 when there are none).

        The classifier reads the posterior mean, as :meth:`~mosaicvi.MosaicVI.predict` does (and
        as scANVI; with 1 % of cells labelled, fitting it on noisy samples learnt much slower).
        """
        labelled = torch.nonzero(labels >= 0, as_tuple=True)[0]
        if labelled.numel() == 0:
            return inference_outputs[MODULE_KEYS.QZ_KEY].loc.new_zeros(())
        logits = self.class_logits(inference_outputs[MODULE_KEYS.QZ_KEY].loc[labelled])
        return F.cross_entropy(logits, labels[labelled])
