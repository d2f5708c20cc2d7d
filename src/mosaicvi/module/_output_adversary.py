"""Output-discriminator terms of :class:`~mosaicvi.module.MosaicVAE` (D-MMVAE's adversarial term)."""

from __future__ import annotations

import torch

from mosaicvi._constants import MODULE_KEYS, modality_registry_key
from mosaicvi.nn._output_discriminator import (
    discriminator_loss,
    generator_loss,
    normalized_profile,
    straight_through_sample,
)
from mosaicvi.nn._sparse import gather_rows


class OutputAdversaryMixin:
    """Per-modality discriminators between observed profiles and decoded draws.

    The module provides ``output_discriminators`` (a ``ModuleDict`` by modality, or ``None``),
    ``output_adversarial_weight``, ``decoders``, ``likelihoods`` and ``modality_names``.
    """

    def output_adversarial_losses(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
    ) -> dict[str, torch.Tensor]:
        """``{"output_discriminator_loss", "output_generator_loss"}``, summed over modalities.

        For each modality, the real side is the observed profiles of the minibatch's cells that
        measured it; the decoded side is a draw (:func:`~mosaicvi.nn.straight_through_sample`)
        from the same cells' reconstructions and from their cross-modal decodings (the modality
        decoded from another modality's posterior, for cells with both). The discriminator loss
        sees the decoded side detached; the generator loss (``-log D``, through the frozen
        discriminator) is scaled by ``output_adversarial_weight * n_features`` per modality, so it
        keeps its balance with the reconstruction (a sum over features) whatever the panel size.
        """
        cross_modal = list(
            self.cross_modal_decodings(tensors, inference_outputs, generative_outputs)
        )
        present = inference_outputs[MODULE_KEYS.PRESENCE_KEY]
        zero = present.new_zeros((), dtype=torch.float32)
        d_total, g_total = zero, zero
        for i, m in enumerate(self.modality_names):
            decoded = [generative_outputs[MODULE_KEYS.PX_KEY][m]]
            decoded += [px for name, _, px in cross_modal if name == m]
            cells = torch.nonzero(present[:, i], as_tuple=True)[0]
            if cells.numel() == 0:
                continue
            likelihood = self.likelihoods[m]
            reference = float(self.decoders[m].log_library_reference.exp())
            real = normalized_profile(
                gather_rows(tensors[modality_registry_key(m)], cells), likelihood, reference
            )
            fakes = [
                normalized_profile(straight_through_sample(px, likelihood), likelihood, reference)
                for px in decoded
                if px["logits"].shape[0] > 0
            ]
            if not fakes:
                continue
            fake = torch.cat(fakes)
            discriminator = self.output_discriminators[m]
            d_total = d_total + discriminator_loss(discriminator, real, fake)
            n_features = fake.shape[1]
            g_total = g_total + self.output_adversarial_weight * n_features * generator_loss(
                discriminator, fake
            )
        return {"output_discriminator_loss": d_total, "output_generator_loss": g_total}
