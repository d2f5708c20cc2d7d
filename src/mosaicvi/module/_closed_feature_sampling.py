"""Module mixin: which features of each Bernoulli modality a training step decodes."""

from __future__ import annotations

import torch

from mosaicvi._constants import modality_registry_key
from mosaicvi.nn._feature_sampling import sample_feature_columns


def checked_fraction(fraction: float) -> float:
    """``closed_feature_fraction`` if it lies in ``(0, 1]``; a clear error otherwise."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"`closed_feature_fraction` must be in (0, 1] (1 decodes every feature), got "
            f"{fraction}."
        )
    return float(fraction)


class ClosedFeatureSamplingMixin:
    """Closed-feature sampling for :class:`~mosaicvi.module.MosaicVAE`.

    Expects ``closed_feature_fraction``, ``modality_names``, ``likelihoods`` (objects) and
    ``output_discriminators`` on the module. See :mod:`mosaicvi.nn._feature_sampling`.
    """

    def sampled_feature_columns(
        self, tensors: dict[str, torch.Tensor]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]] | None:
        """``(columns, weights)`` each Bernoulli modality decodes in this step (``None``: all).

        Only while training, and not with output discriminators (they judge whole profiles).
        """
        if (
            not self.training
            or self.closed_feature_fraction >= 1.0
            or self.output_discriminators is not None
        ):
            return None
        return {
            m: sample_feature_columns(
                tensors[modality_registry_key(m)], self.closed_feature_fraction
            )
            for m in self.modality_names
            if self.likelihoods[m].column_subsets
        }
