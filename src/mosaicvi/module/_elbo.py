"""The loss of :class:`~mosaicvi.module.MosaicVAE`: the ELBO's per-cell terms and the optional ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from scvi.module.base import LossOutput

from mosaicvi._constants import MODULE_KEYS, modality_registry_key
from mosaicvi.nn._sparse import gather_rows, select_rows

if TYPE_CHECKING:
    from mosaicvi.module import MosaicVAE


def reconstruction_terms(
    module: MosaicVAE,
    tensors: dict[str, torch.Tensor],
    inference_outputs: dict,
    generative_outputs: dict,
) -> dict[str, torch.Tensor]:
    """Per-cell NLL ``(n_cells,)`` of each modality, over the cells that measured it.

    Each cell's stratified samples (one per posterior component) enter with their weight; a cell
    that did not measure a modality contributes zero to its term.
    """
    qz = inference_outputs[MODULE_KEYS.QZ_KEY]
    cell_index = inference_outputs[MODULE_KEYS.CELL_INDEX_KEY]
    sample_weight = inference_outputs[MODULE_KEYS.SAMPLE_WEIGHT_KEY]
    # One sample per cell: the decoded rows are the cells that measured the modality, in order,
    # and setup leaves the other rows empty, so selecting them needs no read-back of their
    # count of stored values (as gathering arbitrary rows does).
    one_per_cell = inference_outputs[MODULE_KEYS.POSTERIOR_KEY].n_components == 1
    reconstruction = {}
    for m in module.modality_names:
        rows = generative_outputs[MODULE_KEYS.ROWS_KEY][m]
        cells = cell_index[rows]
        x = tensors[modality_registry_key(m)]
        x = select_rows(x, rows) if one_per_cell else gather_rows(x, cells)
        nll = module.decoders[m].negative_log_likelihood(
            x, generative_outputs[MODULE_KEYS.PX_KEY][m]
        )
        reconstruction[m] = qz.loc.new_zeros(qz.loc.shape[0], dtype=torch.float32).index_add(
            0, cells, (nll * sample_weight[rows]).float()
        )
    return reconstruction


def kl_terms(
    module: MosaicVAE, inference_outputs: dict, labels: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Per-cell KL terms ``(n_cells,)``.

    The prior's (``kl_z``, and ``kl_u``/``kl_c`` of the mixture prior) and, with modality priors,
    ``kl_modality``.
    """
    kl_local = module.prior.kl_terms(
        inference_outputs[MODULE_KEYS.POSTERIOR_KEY],
        inference_outputs[MODULE_KEYS.Z_STRATA_KEY],
        inference_outputs[MODULE_KEYS.CELL_INDEX_KEY],
        inference_outputs[MODULE_KEYS.SAMPLE_WEIGHT_KEY],
        labels,
    )
    if module.modality_priors is not None:
        kl_local.update(
            module.modality_priors.kl_terms(
                module.fusion,
                inference_outputs[MODULE_KEYS.EMBEDDINGS_KEY],
                inference_outputs[MODULE_KEYS.PRESENCE_KEY],
                labels,
            )
        )
    return kl_local


def mosaic_loss(
    module: MosaicVAE,
    tensors: dict[str, torch.Tensor],
    inference_outputs: dict,
    generative_outputs: dict,
    kl_weight: float = 1.0,
    adversarial_strength: float = 1.0,
    output_adversarial_scale: float = 1.0,
    n_importance_samples: int = 1,
    importance_gradient: str = "dreg",
) -> LossOutput:
    """ELBO with reconstruction masked by presence, plus the optional terms.

    Reconstruction is summed over features and modalities and KL over latent dimensions, per
    cell; both are averaged over the same cells. Reconstruction and KL of mixture posteriors
    are stratified estimates (see the class). With ``prior="modality"`` the unimodal
    posteriors' KL is the ``kl_modality`` term of the KL. With ``n_importance_samples``
    ``K > 1``, the importance-weighted bound with ``K`` draws per posterior component and
    ``importance_gradient`` (``"dreg"`` or ``"iwae"``) replaces the ELBO in the loss (see
    :mod:`mosaicvi.module._importance_weighted`); KL terms other than ``kl_z`` (the modality
    priors') are added as they are, and the logged ELBO is unchanged. The batch adversary
    (``adversarial_strength``), output adversaries (``output_adversarial_scale``, the plan's
    warm-up), classification, cross-modal and graph terms are added by
    :meth:`~mosaicvi.module.MosaicVAE.auxiliary_losses`, each logged under its own name.
    """
    reconstruction = reconstruction_terms(module, tensors, inference_outputs, generative_outputs)
    labels = module.cell_labels(tensors)
    kl_local = kl_terms(module, inference_outputs, labels)
    kl_total = torch.stack(list(kl_local.values())).sum(0)
    elbo_loss = torch.stack(list(reconstruction.values())).sum(0) + kl_weight * kl_total
    if n_importance_samples > 1:  # the bound replaces the ELBO (which is still logged)
        elbo_loss = module.importance_weighted_loss(
            tensors,
            inference_outputs,
            generative_outputs,
            n_importance_samples,
            kl_weight,
            importance_gradient,
        ) + kl_weight * sum(t for k, t in kl_local.items() if k != "kl_z")
    loss = elbo_loss.mean()
    extra_metrics = {}
    if len(kl_local) > 1:  # kl_z, kl_u and kl_c of the mixture prior, or kl_modality
        extra_metrics.update({name: term.mean().detach() for name, term in kl_local.items()})
    auxiliary, auxiliary_metrics = module.auxiliary_losses(
        tensors,
        inference_outputs,
        generative_outputs,
        labels,
        adversarial_strength,
        output_adversarial_scale,
    )
    loss = loss + auxiliary
    extra_metrics.update(auxiliary_metrics)
    return LossOutput(
        loss=loss,
        reconstruction_loss=reconstruction,
        kl_local=kl_local,
        extra_metrics=extra_metrics,
    )
