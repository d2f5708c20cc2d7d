"""Module mixin: which features of each Bernoulli modality a training step decodes."""

from __future__ import annotations

import torch

from mosaicvi._constants import modality_registry_key
from mosaicvi.nn._feature_sampling import (
    FeatureColumns,
    feature_capacity,
    sample_feature_columns,
)


def checked_fraction(fraction: float) -> float:
    """``closed_feature_fraction`` if it lies in ``(0, 1]``; a clear error otherwise."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(
            f"`closed_feature_fraction` must be in (0, 1] (1 decodes every feature), got "
            f"{fraction}."
        )
    return float(fraction)


def reads_back_freely(device: torch.device) -> bool:
    """Whether reading a count back from ``device`` costs no host sync (the CPU)."""
    return device.type == "cpu"


class ClosedFeatureSamplingMixin:
    """Closed-feature sampling for :class:`~mosaicvi.module.MosaicVAE`.

    Expects ``closed_feature_fraction``, ``modality_names``, ``likelihoods`` (objects) and
    ``output_discriminators`` on the module. See :mod:`mosaicvi.nn._feature_sampling`.
    """

    def sampled_feature_columns(
        self, tensors: dict[str, torch.Tensor]
    ) -> dict[str, FeatureColumns] | None:
        """Features each Bernoulli modality decodes in this step (``None``: all).

        Only while training, and not with output discriminators (they judge whole profiles).
        On the CPU, every kept feature (:func:`sample_feature_columns`); on an accelerator, a
        fixed number of features without a host sync, sized from the first step's draw
        (:func:`~mosaicvi.nn._feature_sampling.feature_capacity`).
        """
        if (
            not self.training
            or self.closed_feature_fraction >= 1.0
            or self.output_discriminators is not None
        ):
            return None
        return {
            m: self._sample_columns(m, tensors[modality_registry_key(m)])
            for m in self.modality_names
            if self.likelihoods[m].column_subsets
        }

    def _sample_columns(self, modality: str, x: torch.Tensor) -> FeatureColumns:
        fraction = self.closed_feature_fraction
        if reads_back_freely(x.device):
            return sample_feature_columns(x, fraction)
        capacities = self.__dict__.setdefault("_feature_capacities", {})
        if modality not in capacities:  # one read-back per fit's module, to size the rest
            sample = sample_feature_columns(x, fraction)
            capacities[modality] = feature_capacity(len(sample.columns), x.shape[1])
            return sample
        return sample_feature_columns(x, fraction, capacities[modality])
