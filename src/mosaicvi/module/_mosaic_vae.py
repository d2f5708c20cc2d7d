"""MosaicVAE: the multimodal VAE behind :class:`~mosaicvi.MosaicVI`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data

from mosaicvi._constants import MODULE_KEYS, PRESENCE_KEY, modality_registry_key
from mosaicvi.module._auxiliary_losses import AuxiliaryLossesMixin
from mosaicvi.module._batch_adversary import make_latent_discriminator
from mosaicvi.module._cell_labels import CellLabelsMixin
from mosaicvi.module._closed_feature_sampling import ClosedFeatureSamplingMixin
from mosaicvi.module._elbo import mosaic_loss
from mosaicvi.module._encoder_inputs import EncoderInputsMixin
from mosaicvi.module._importance_weighted import ImportanceWeightedMixin
from mosaicvi.module._networks import (
    check_module_options,
    feature_slices,
    make_decoders,
    make_encoders,
    make_graph_encoder,
    make_output_discriminators,
)
from mosaicvi.module._output_adversary import OutputAdversaryMixin
from mosaicvi.module._prior_heads import make_prior_heads
from mosaicvi.nn import make_fusion
from mosaicvi.nn._likelihoods import get_likelihood

if TYPE_CHECKING:
    from collections.abc import Mapping

    import scipy.sparse as sp


class MosaicVAE(
    AuxiliaryLossesMixin,
    ClosedFeatureSamplingMixin,
    CellLabelsMixin,
    OutputAdversaryMixin,
    ImportanceWeightedMixin,
    EncoderInputsMixin,
    BaseModuleClass,
):
    """Multimodal VAE over whichever modalities each cell has.

    ``x_m -> transform_m -> encoder_m -> e_m``; a fusion of the present ``e_m`` (masked gated
    attention by default, or a product, mixture or mixture of products of Gaussian experts) gives
    ``q(z | x_available)``; the prior is ``N(0, I)`` or mmAAVI's mixture prior; for each modality a
    decoder with batch-specific per-feature affine and likelihood reconstructs the counts of the
    cells that measured it. A latent adversary removes batch from ``z``. With labels, a
    classifier on ``z`` (the mixture prior's ``q(c | z)``) is trained.

    Mixture posteriors (``"moe"``, ``"mopoe"``) are sampled stratified, as MMVAE (one sample per
    component: ``"z_strata"``, ``"cell_index"``, ``"sample_weight"``).

    With a guidance graph, a :class:`~mosaicvi.nn.GraphEncoder` embeds every feature, decoders
    are hybrid (``eta = w z V_m^T + (1 - w) MLP_m(z)``), the loss gains the graph NLL and KL.

    Parameters
    ----------
    modalities, n_features, n_batch
        Modality name -> kind (the presence mask's column order); -> number of features; batches.
    likelihoods
        Modality name -> a registered likelihood name (:data:`~mosaicvi.nn._likelihoods.LIKELIHOODS`).
    input_transforms
        Modality name -> an input transform name (:data:`~mosaicvi.nn._input_transforms.INPUT_TRANSFORMS`).
    library_reference
        Modality name -> typical library size (decoding at a fixed library; Bernoulli offsets).
    transform_params
        Modality name -> fitted parameters of its input transform (:func:`~mosaicvi.nn.make_input_transform`).
    decoder_bias
        Modality name -> starting per-feature decoder bias (the average profile's logits).
    feature_masks, panel_dropout
        Modality name -> ``(n_batch, n_features)`` booleans: which batch measured which feature
        (modalities left out: all); the probability, while training, of showing a cell's encoder
        only the features every batch measured (:mod:`~mosaicvi.module._encoder_inputs`).
    n_cats_per_cov
        Number of categories of each extra categorical covariate (decoder input).
    n_latent, n_hidden, n_hidden_decoder, n_layers_encoder, n_layers_decoder, dropout_rate
        Sizes and dropout of the networks (:class:`~mosaicvi.MosaicVI`).
    n_attention, batch_discriminator
        Width of the attention scorer; whether to train the batch discriminator (not with 1 batch).
    encode_batch
        Condition the encoders on the batch (scArches' conditional encoder: a learnt per-batch
        vector added to each first layer); query mapping trains new batches' rows.
    discriminator_target
        What it predicts from ``z``: ``"batch"`` or ``"modality_set"`` (modalities measured).
    adversary_feature_scale, adversary_full_strength_features
        Each cell's adversary strength times ``f`` x its measured features ``F`` and times
        ``min(1, F / n)`` (:func:`~mosaicvi.module._batch_adversary.adversary_strength`).
    modality_dropout
        While training, the probability of hiding each measured modality of a multi-modality cell
        from the encoders (at least one stays); hidden modalities are still reconstructed.
    closed_feature_fraction
        Fraction of the features closed in a whole minibatch that training decodes (likelihoods
        with ``column_subsets``, i.e. Bernoulli).
    guidance_graph
        Signed feature x feature graph over all features in model order, or ``None`` (MLPs).
    graph_weight
        Weight ``w`` of ``z V_m^T`` in the hybrid decoders (used with a graph only).
    graph_loss_weight
        Weight of the graph NLL (a mean over sampled edges) per feature of the model: the loss
        adds ``graph_loss_weight * n_features * NLL``, balanced with the reconstruction.
    graph_kl_weight, n_graph_positive_edges, n_graph_negatives
        Weight of the KL of ``q(V)``; edges drawn at every step; negative pairs per edge.
    fusion, prior
        Registered names (:data:`~mosaicvi.nn.FUSIONS`, :data:`~mosaicvi.module._prior_heads.PRIORS`).
    n_clusters
        Components of the mixture prior, or of each modality's prior (at least ``n_labels``).
    n_labels
        Label classes for semi-supervised training (0: none); other codes mark unlabelled cells.
    classification_weight
        Weight of the labelled cells' cross-entropy (mean over the labelled cells of a minibatch).
    cross_modal_weight
        Weight of the cross-modal term (:meth:`cross_modal_loss`); ``0`` disables it.
    output_discriminator
        Train a :class:`~mosaicvi.nn.OutputDiscriminator` per modality and add the decoders'
        generator term (:meth:`output_adversarial_losses`); needs
        :class:`~mosaicvi.train.MosaicTrainingPlan`, which steps the discriminators.
    output_adversarial_weight
        Weight, per feature of a modality, of the generator term.
    """

    def __init__(
        self,
        modalities: Mapping[str, str],
        n_features: Mapping[str, int],
        n_batch: int,
        likelihoods: Mapping[str, str],
        input_transforms: Mapping[str, str],
        library_reference: Mapping[str, float],
        transform_params: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
        decoder_bias: Mapping[str, torch.Tensor] | None = None,
        feature_masks: Mapping[str, torch.Tensor] | None = None,
        panel_dropout: float = 0.0,
        n_cats_per_cov: list[int] | None = None,
        n_latent: int = 20,
        n_hidden: int = 256,
        n_hidden_decoder: int = 128,
        n_layers_encoder: int = 2,
        n_layers_decoder: int = 2,
        dropout_rate: float = 0.1,
        n_attention: int = 128,
        batch_discriminator: bool = True,
        encode_batch: bool = False,
        discriminator_target: str = "batch",
        adversary_feature_scale: float | None = None,
        adversary_full_strength_features: int | None = None,
        modality_dropout: float = 0.2,
        closed_feature_fraction: float = 0.1,
        guidance_graph: sp.spmatrix | sp.sparray | None = None,
        graph_weight: float = 0.9,
        graph_loss_weight: float = 0.02,
        graph_kl_weight: float = 0.01,
        n_graph_positive_edges: int = 4096,
        n_graph_negatives: int = 10,
        fusion: str = "attention",
        prior: str = "normal",
        n_clusters: int | None = None,
        n_labels: int = 0,
        classification_weight: float = 10.0,
        cross_modal_weight: float = 0.0,
        output_discriminator: bool = False,
        output_adversarial_weight: float = 0.001,
    ):
        super().__init__()
        check_module_options(
            fusion, prior, modality_dropout, closed_feature_fraction, cross_modal_weight
        )
        self.modality_dropout = modality_dropout
        self.closed_feature_fraction = float(closed_feature_fraction)
        self.modality_names = list(modalities)
        self.n_batch = n_batch
        self.n_latent = n_latent
        self.register_feature_masks(feature_masks, panel_dropout)
        self.likelihoods = {m: get_likelihood(likelihoods[m]) for m in self.modality_names}
        n_features = {m: n_features[m] for m in self.modality_names}
        self.feature_slices = feature_slices(self.modality_names, n_features)
        self.graph_encoder = make_graph_encoder(
            guidance_graph,
            sum(n_features.values()),
            n_latent,
            n_graph_positive_edges,
            n_graph_negatives,
        )
        self.graph_loss_weight = graph_loss_weight
        self.graph_kl_weight = graph_kl_weight
        self.encoders = make_encoders(
            n_features,
            input_transforms,
            transform_params or {},
            n_hidden,
            n_layers_encoder,
            dropout_rate,
            n_batch if encode_batch else 0,
        )
        self.fusion = make_fusion(fusion, self.modality_names, n_hidden, n_latent, n_attention)
        self.n_labels = n_labels
        self.classification_weight = classification_weight
        self.cross_modal_weight = cross_modal_weight
        self.prior_name = prior
        self.prior, self.classifier, self.modality_priors = make_prior_heads(
            prior, self.modality_names, n_latent, n_labels, n_clusters
        )
        self.decoders = make_decoders(
            n_latent,
            n_features,
            n_batch,
            self.likelihoods,
            library_reference,
            decoder_bias or {},
            n_cats_per_cov,
            n_hidden_decoder,
            n_layers_decoder,
            dropout_rate,
            graph_weight if self.graph_encoder is not None else 0.0,
        )
        self.discriminator_target = discriminator_target
        self.adversary_feature_scale = adversary_feature_scale
        self.adversary_full_strength_features = adversary_full_strength_features
        self.discriminator = make_latent_discriminator(
            batch_discriminator,
            discriminator_target,
            n_latent,
            n_batch,
            len(self.modality_names),
            dropout_rate,
        )
        self.output_adversarial_weight = output_adversarial_weight
        self.output_discriminators = (
            make_output_discriminators(n_features, dropout_rate) if output_discriminator else None
        )

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            MODULE_KEYS.X_KEY: {m: tensors[modality_registry_key(m)] for m in self.modality_names},
            MODULE_KEYS.PRESENCE_KEY: tensors[PRESENCE_KEY],
            MODULE_KEYS.BATCH_INDEX_KEY: tensors[REGISTRY_KEYS.BATCH_KEY],
        }

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict
    ) -> dict:
        cells = inference_outputs[MODULE_KEYS.CELL_INDEX_KEY]
        cat_covs = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
        return {
            MODULE_KEYS.Z_KEY: inference_outputs[MODULE_KEYS.Z_STRATA_KEY],
            MODULE_KEYS.BATCH_INDEX_KEY: tensors[REGISTRY_KEYS.BATCH_KEY][cells],
            MODULE_KEYS.LIBRARY_KEY: {
                m: lib[cells] for m, lib in inference_outputs[MODULE_KEYS.LIBRARY_KEY].items()
            },
            MODULE_KEYS.PRESENCE_KEY: inference_outputs[MODULE_KEYS.PRESENCE_KEY][cells],
            MODULE_KEYS.CAT_COVS_KEY: None if cat_covs is None else cat_covs[cells],
            MODULE_KEYS.FEATURE_COLUMNS_KEY: self.sampled_feature_columns(tensors),
        }

    def decode_modality(
        self,
        modality: str,
        z: torch.Tensor,
        batch_index: torch.Tensor,
        library: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        v: torch.Tensor | None = None,
        cells: torch.Tensor | None = None,
        columns: tuple[torch.Tensor, torch.Tensor] | None = None,
        measured_only: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Likelihood parameters of ``modality`` for latent codes ``z``: every decoding path's call.

        ``batch_index``, ``library`` and ``cat_covs`` are per-cell; with ``cells`` (indices) they
        are indexed by it to match ``z``'s rows. ``v``: the feature embeddings of all features
        when the model has a graph. ``columns``: the features a
        training step decodes (:meth:`sampled_feature_columns`). ``measured_only``: leave the
        features a cell's batch did not measure out (fitting); outputs pass ``False``.
        """
        if cells is not None:
            batch_index, library = batch_index[cells], library[cells]
            cat_covs = None if cat_covs is None else cat_covs[cells]
        return self.decoders[modality](
            z,
            batch_index,
            library,
            cat_covs,
            None if v is None else v[slice(*self.feature_slices[modality])],
            columns,
            self.feature_mask(modality, batch_index) if measured_only else None,
        )

    @auto_move_data
    def inference(
        self,
        x: dict[str, torch.Tensor],
        presence: torch.Tensor,
        n_samples: int = 1,
        batch_index: torch.Tensor | None = None,
    ) -> dict:
        """Encode the present modalities and fuse them into ``q(z | x_available)``.

        ``"qz"`` is the posterior (moment-matched for mixtures), ``"z"`` one sample per cell (or
        ``n_samples``), ``"posterior"`` the :class:`~mosaicvi.nn.FusedPosterior`, ``"attention"``
        the modality weights; ``"z_strata"``, ``"cell_index"``, ``"sample_weight"`` the samples
        the loss decodes. ``batch_index``: removes entries of unmeasured features (masks).
        """
        present = presence > 0.5
        x, seen, masks = self.measured_inputs(x, batch_index)
        embeddings = torch.stack(
            [self.encoders[m](seen[m], masks[m], batch_index) for m in self.modality_names], dim=1
        )
        posterior = self.fusion(embeddings, self.encoder_presence(present))
        qz = posterior.moment_matched()
        z_strata, cell_index, sample_weight = posterior.stratified_sample()
        if n_samples == 1:
            z = z_strata if posterior.n_components == 1 else posterior.sample()
        else:
            z = posterior.sample(n_samples)
        library = {m: self.library_size(m, x[m]) for m in self.modality_names}
        return {
            MODULE_KEYS.Z_KEY: z,
            MODULE_KEYS.QZ_KEY: qz,
            MODULE_KEYS.QZM_KEY: qz.loc,
            MODULE_KEYS.QZV_KEY: qz.scale.square(),
            MODULE_KEYS.POSTERIOR_KEY: posterior,
            MODULE_KEYS.ATTENTION_KEY: posterior.modality_weights,
            MODULE_KEYS.EMBEDDINGS_KEY: embeddings,
            MODULE_KEYS.Z_STRATA_KEY: z_strata,
            MODULE_KEYS.CELL_INDEX_KEY: cell_index,
            MODULE_KEYS.SAMPLE_WEIGHT_KEY: sample_weight,
            MODULE_KEYS.LIBRARY_KEY: library,
            MODULE_KEYS.PRESENCE_KEY: present,
        }

    @auto_move_data
    def generative(
        self,
        z: torch.Tensor,
        batch_index: torch.Tensor,
        library: dict[str, torch.Tensor],
        presence: torch.Tensor,
        cat_covs: torch.Tensor | None = None,
        transform_batch: int | None = None,
        feature_columns: Mapping[str, tuple[torch.Tensor, torch.Tensor]] | None = None,
    ) -> dict:
        """Decode each modality for the cells that measured it.

        ``{"px": {modality: params}, "rows": {modality: row indices}}``, plus ``"qv"``, ``"v"``
        (feature embeddings) with a graph. ``feature_columns``: :meth:`sampled_feature_columns`.
        """
        if z.dim() != 2:
            raise ValueError("MosaicVAE.generative decodes one sample of z at a time.")
        batch_index = batch_index.reshape(-1).long()
        if transform_batch is not None:
            batch_index = torch.full_like(batch_index, int(transform_batch))
        outputs = {}
        v = None
        if self.graph_encoder is not None:
            qv = self.graph_encoder()
            v = qv.rsample() if self.training else qv.loc
            outputs.update({MODULE_KEYS.QV_KEY: qv, MODULE_KEYS.V_KEY: v})
        px, rows = {}, {}
        for i, m in enumerate(self.modality_names):
            rows[m] = torch.nonzero(presence[:, i], as_tuple=True)[0]
            px[m] = self.decode_modality(
                m,
                z[rows[m]],
                batch_index,
                library[m],
                cat_covs,
                v,
                cells=rows[m],
                columns=None if feature_columns is None else feature_columns.get(m),
            )
        return {MODULE_KEYS.PX_KEY: px, MODULE_KEYS.ROWS_KEY: rows, **outputs}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
        adversarial_strength: float = 1.0,
        output_adversarial_scale: float = 1.0,
        n_importance_samples: int = 1,
        importance_gradient: str = "dreg",
    ) -> LossOutput:
        """The loss, :func:`~mosaicvi.module._elbo.mosaic_loss` (the plan needs named keywords)."""
        return mosaic_loss(
            self,
            tensors,
            inference_outputs,
            generative_outputs,
            kl_weight=kl_weight,
            adversarial_strength=adversarial_strength,
            output_adversarial_scale=output_adversarial_scale,
            n_importance_samples=n_importance_samples,
            importance_gradient=importance_gradient,
        )
