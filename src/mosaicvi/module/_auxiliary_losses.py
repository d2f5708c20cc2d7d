"""Loss terms beside the ELBO: classification, cross-modal, batch and output adversaries, graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS

from mosaicvi._constants import MODULE_KEYS, modality_registry_key
from mosaicvi.module._batch_adversary import adversary_strength, discriminator_classes
from mosaicvi.nn._sparse import gather_rows

if TYPE_CHECKING:
    from collections.abc import Iterator


class AuxiliaryLossesMixin:
    """Optional loss terms of :class:`~mosaicvi.module.MosaicVAE` (see its ``loss``)."""

    def cross_modal_decodings(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict, generative_outputs: dict
    ) -> Iterator[tuple[str, torch.Tensor, dict[str, torch.Tensor]]]:
        """``(modality j, cells, params)``: ``j`` decoded from ``q(z | x_i)`` for each ``i != j``.

        Only cells with several modalities take part; each modality ``i`` alone is passed through
        the fusion (its expert, for the product and mixture fusions) and one sample decodes every
        other modality ``j`` the cell has, at the cell's batch and observed library of ``j``.
        """
        embeddings = inference_outputs[MODULE_KEYS.EMBEDDINGS_KEY]
        present = inference_outputs[MODULE_KEYS.PRESENCE_KEY]
        batch_index = tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long()
        cat_covs = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
        v = generative_outputs.get(MODULE_KEYS.V_KEY)
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
                px = self.decode_modality(
                    m,
                    z[rows],
                    batch_index,
                    inference_outputs[MODULE_KEYS.LIBRARY_KEY][m],
                    cat_covs,
                    v,
                    cells=target,
                )
                yield m, target, px

    def cross_modal_loss(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict, generative_outputs: dict
    ) -> torch.Tensor:
        """Mean over cells of the NLL of each modality ``j`` decoded from ``q(z | x_i)``, ``i != j``.

        Only cells with several modalities contribute (0 for the others); see
        :meth:`cross_modal_decodings`.
        """
        total = inference_outputs[MODULE_KEYS.EMBEDDINGS_KEY].new_zeros(
            inference_outputs[MODULE_KEYS.PRESENCE_KEY].shape[0], dtype=torch.float32
        )
        for m, target, px in self.cross_modal_decodings(
            tensors, inference_outputs, generative_outputs
        ):
            x = gather_rows(tensors[modality_registry_key(m)], target)
            nll = self.decoders[m].negative_log_likelihood(x, px)
            total = total.index_add(0, target, nll.float())
        return total.mean()

    def auxiliary_losses(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        labels: torch.Tensor | None,
        adversarial_strength: float,
        output_adversarial_scale: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted sum of the optional loss terms, and each term (detached) for logging.

        Terms, each only when the model has it: ``classification_weight`` times the labelled
        cells' cross-entropy (``classification_loss``); ``cross_modal_weight`` times the
        cross-modal NLL (``cross_modal_loss``); in training mode, the output discriminators' loss
        plus ``output_adversarial_scale`` times their generator term
        (``output_discriminator_loss``, ``output_generator_loss``); the latent discriminator's
        cross-entropy (on the batch or the modality set, ``discriminator_target``) on ``z``
        behind a gradient reversal of ``adversarial_strength``, per cell times
        ``adversary_feature_scale`` times its features when that is set (``discriminator_loss``);
        ``graph_loss_weight * n_features`` times the guidance graph's NLL and ``graph_kl_weight``
        times the KL of ``q(V)`` (``graph_nll``, ``graph_kl``).
        """
        qz = inference_outputs[MODULE_KEYS.QZ_KEY]
        total = qz.loc.new_zeros(())
        metrics = {}
        if labels is not None:
            classification = self.classification_loss(inference_outputs, labels)
            total = total + self.classification_weight * classification
            metrics["classification_loss"] = classification
        if self.cross_modal_weight > 0:
            cross_modal = self.cross_modal_loss(tensors, inference_outputs, generative_outputs)
            total = total + self.cross_modal_weight * cross_modal
            metrics["cross_modal_loss"] = cross_modal
        if self.output_discriminators is not None and self.training:
            adversarial = self.output_adversarial_losses(
                tensors, inference_outputs, generative_outputs
            )
            total = total + adversarial["output_discriminator_loss"]
            total = total + output_adversarial_scale * adversarial["output_generator_loss"]
            metrics.update(adversarial)
        if self.discriminator is not None:
            present = inference_outputs[MODULE_KEYS.PRESENCE_KEY]
            classes = discriminator_classes(
                self.discriminator_target,
                tensors[REGISTRY_KEYS.BATCH_KEY],
                present,
            )
            strength = adversary_strength(
                adversarial_strength,
                self.adversary_feature_scale,
                self.measured_feature_counts(present, tensors[REGISTRY_KEYS.BATCH_KEY]),
                self.adversary_full_strength_features,
            )
            logits = self.discriminator(qz.loc, strength)
            discriminator_loss = F.cross_entropy(logits, classes)
            total = total + discriminator_loss
            metrics["discriminator_loss"] = discriminator_loss
        if self.graph_encoder is not None:
            graph_nll = self.graph_encoder.reconstruction_loss(
                generative_outputs[MODULE_KEYS.V_KEY]
            )
            graph_kl = self.graph_encoder.kl_divergence(generative_outputs[MODULE_KEYS.QV_KEY])
            n_features = self.graph_encoder.n_features
            total = total + self.graph_loss_weight * n_features * graph_nll
            total = total + self.graph_kl_weight * graph_kl
            metrics["graph_nll"] = graph_nll
            metrics["graph_kl"] = graph_kl
        return total, {name: term.detach() for name, term in metrics.items()}
