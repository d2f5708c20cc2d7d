"""MosaicVAE: the multimodal VAE behind :class:`~mosaicvi.MosaicVI`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from scvi import REGISTRY_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn
from torch.distributions import Normal, kl_divergence

from mosaicvi._constants import PRESENCE_KEY, modality_registry_key
from mosaicvi.nn import (
    BatchDiscriminator,
    GraphEncoder,
    MaskedGatedAttention,
    ModalityDecoder,
    ModalityEncoder,
    make_input_transform,
)
from mosaicvi.nn._sparse import row_nnz, row_sums, select_rows

if TYPE_CHECKING:
    from collections.abc import Mapping

    import scipy.sparse as sp


class MosaicVAE(BaseModuleClass):
    """Multimodal VAE over whichever modalities each cell has.

    ``x_m -> transform_m -> encoder_m -> e_m``; masked gated attention over the present ``e_m``
    gives ``q(z | x_available)``; ``p(z) = N(0, I)``; for each modality a decoder with batch-specific
    per-feature affine and likelihood reconstructs the counts of the cells that measured it. A
    batch discriminator behind a gradient-reversal layer removes batch from ``z``.

    With a guidance graph, a :class:`~mosaicvi.nn.GraphEncoder` gives every feature an embedding
    ``v_f`` in the latent space, the decoders become hybrid (``eta = w z V_m^T + (1 - w) MLP_m(z)``)
    and the loss gains the graph's negative-sampling NLL and the KL of ``q(V)``: features linked
    across modalities are decoded from nearby directions of ``z``, which is what places cells
    measured with different modalities in one space.

    Parameters
    ----------
    modalities
        Modality name -> kind, in the column order of the presence mask.
    n_features
        Modality name -> number of features.
    n_batch
        Number of batches.
    likelihoods
        Modality name -> ``"nb"``, ``"zinb"`` or ``"bernoulli"``.
    input_transforms
        Modality name -> ``"log_normalize"``, ``"tfidf"``, ``"lsi"`` or ``"clr"``.
    library_reference
        Modality name -> typical library size (decoding at a fixed library; Bernoulli offsets).
    transform_params
        Modality name -> fitted parameters of its input transform (``idf`` for ``"tfidf"``;
        ``idf`` and ``loadings`` for ``"lsi"``; see :func:`~mosaicvi.nn.make_input_transform`).
    decoder_bias
        Modality name -> starting per-feature decoder bias (the average profile's logits).
    n_cats_per_cov
        Number of categories of each extra categorical covariate (decoder input).
    n_latent
        Dimension of z.
    n_hidden
        Width of the encoders' hidden layers and of the modality embeddings.
    n_hidden_decoder
        Width of the decoders' hidden layers. The last decoder layer maps to every feature, so this
        width sets most of the cost per cell for modalities with many features (ATAC).
    n_layers_encoder
        Hidden layers per encoder.
    n_layers_decoder
        Hidden layers per decoder.
    dropout_rate
        Dropout in encoders, decoders and discriminator.
    n_attention
        Width of the attention scorer.
    batch_discriminator
        Whether to train the batch discriminator (ignored with a single batch).
    modality_dropout
        During training, the probability of hiding each measured modality of a multi-modality cell
        from the encoders (at least one stays). Hidden modalities are still reconstructed, so each
        modality learns to predict the others, which is what cells measured with one modality rely
        on. ``0`` disables it.
    guidance_graph
        Signed feature x feature graph over all features, in model order (modality by modality,
        each in its feature order), or ``None`` for plain MLP decoders.
    graph_weight
        Weight ``w`` of ``z V_m^T`` in the hybrid decoders (used with a graph only).
    graph_loss_weight
        Weight of the graph NLL (a mean over sampled edges) per feature of the model: the loss
        adds ``graph_loss_weight * n_features * NLL``, which keeps its balance with the
        reconstruction (a sum over features) whatever the panel sizes.
    graph_kl_weight
        Weight of the KL of ``q(V)`` (averaged over features).
    n_graph_positive_edges
        Positive edges drawn from the whole graph at every step.
    n_graph_negatives
        Negative pairs per positive edge.
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
        n_cats_per_cov: list[int] | None = None,
        n_latent: int = 20,
        n_hidden: int = 256,
        n_hidden_decoder: int = 128,
        n_layers_encoder: int = 2,
        n_layers_decoder: int = 2,
        dropout_rate: float = 0.1,
        n_attention: int = 128,
        batch_discriminator: bool = True,
        modality_dropout: float = 0.2,
        guidance_graph: sp.spmatrix | sp.sparray | None = None,
        graph_weight: float = 0.9,
        graph_loss_weight: float = 0.02,
        graph_kl_weight: float = 0.01,
        n_graph_positive_edges: int = 4096,
        n_graph_negatives: int = 10,
    ):
        super().__init__()
        if not 0.0 <= modality_dropout < 1.0:
            raise ValueError(f"`modality_dropout` must be in [0, 1), got {modality_dropout}.")
        self.modality_dropout = modality_dropout
        self.modality_names = list(modalities)
        self.n_batch = n_batch
        self.n_latent = n_latent
        self.likelihoods = dict(likelihoods)
        transform_params = transform_params or {}
        self.feature_slices = {}
        start = 0
        for m in self.modality_names:
            self.feature_slices[m] = (start, start + n_features[m])
            start += n_features[m]
        self.graph_encoder = None
        if guidance_graph is not None:
            if guidance_graph.shape != (start, start):
                raise ValueError(
                    f"The guidance graph has shape {guidance_graph.shape}; the modalities have "
                    f"{start} features in all."
                )
            self.graph_encoder = GraphEncoder(
                guidance_graph,
                n_latent,
                n_positive_edges=n_graph_positive_edges,
                n_negatives=n_graph_negatives,
            )
        self.graph_loss_weight = graph_loss_weight
        self.graph_kl_weight = graph_kl_weight
        self.encoders = nn.ModuleDict(
            {
                m: ModalityEncoder(
                    n_features[m],
                    make_input_transform(input_transforms[m], transform_params.get(m)),
                    n_hidden=n_hidden,
                    n_layers=n_layers_encoder,
                    dropout_rate=dropout_rate,
                )
                for m in self.modality_names
            }
        )
        self.fusion = MaskedGatedAttention(n_hidden, n_attention)
        self.z_mean = nn.Linear(n_hidden, n_latent)
        self.z_var = nn.Linear(n_hidden, n_latent)
        self.decoders = nn.ModuleDict(
            {
                m: ModalityDecoder(
                    n_latent,
                    n_features[m],
                    n_batch,
                    likelihood=likelihoods[m],
                    library_reference=library_reference[m],
                    n_cats_per_cov=n_cats_per_cov,
                    n_hidden=n_hidden_decoder,
                    n_layers=n_layers_decoder,
                    dropout_rate=dropout_rate,
                    graph_weight=graph_weight if self.graph_encoder is not None else 0.0,
                    initial_bias=(decoder_bias or {}).get(m),
                )
                for m in self.modality_names
            }
        )
        self.discriminator = (
            BatchDiscriminator(n_latent, n_batch, dropout_rate=dropout_rate)
            if batch_discriminator and n_batch > 1
            else None
        )

    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            "x": {m: tensors[modality_registry_key(m)] for m in self.modality_names},
            "presence": tensors[PRESENCE_KEY],
        }

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict
    ) -> dict:
        return {
            "z": inference_outputs["z"],
            "batch_index": tensors[REGISTRY_KEYS.BATCH_KEY],
            "library": inference_outputs["library"],
            "presence": inference_outputs["presence"],
            "cat_covs": tensors.get(REGISTRY_KEYS.CAT_COVS_KEY),
        }

    def library_size(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """Per-cell library of ``modality``: total counts, or open features for Bernoulli."""
        if self.likelihoods[modality] == "bernoulli":
            return row_nnz(x)
        return row_sums(x)

    def encoder_presence(self, present: torch.Tensor) -> torch.Tensor:
        """Modalities the encoders see: ``present``, minus random drop-outs while training."""
        if not self.training or self.modality_dropout == 0.0:
            return present
        dropped = torch.rand(present.shape, device=present.device) < self.modality_dropout
        kept = present & ~dropped
        nothing_left = ~kept.any(dim=1, keepdim=True)
        return torch.where(nothing_left, present, kept)

    @auto_move_data
    def inference(
        self, x: dict[str, torch.Tensor], presence: torch.Tensor, n_samples: int = 1
    ) -> dict:
        """Encode the present modalities and fuse them into ``q(z | x_available)``."""
        present = presence > 0.5
        embeddings = torch.stack([self.encoders[m](x[m]) for m in self.modality_names], dim=1)
        fused, attention = self.fusion(embeddings, self.encoder_presence(present))
        qz_m = self.z_mean(fused)
        qz_v = F.softplus(self.z_var(fused)) + 1e-4
        qz = Normal(qz_m, qz_v.sqrt())
        z = qz.rsample() if n_samples == 1 else qz.rsample((n_samples,))
        library = {m: self.library_size(m, x[m]) for m in self.modality_names}
        return {
            "z": z,
            "qz": qz,
            "qzm": qz_m,
            "qzv": qz_v,
            "attention": attention,
            "library": library,
            "presence": present,
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
    ) -> dict:
        """Decode each modality for the cells that measured it.

        Returns ``{"px": {modality: params}, "rows": {modality: row indices}}``, plus ``"qv"``
        and ``"v"`` (posterior and sample of the feature embeddings) with a guidance graph.
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
            outputs.update(qv=qv, v=v)
        px, rows = {}, {}
        for i, m in enumerate(self.modality_names):
            idx = torch.nonzero(presence[:, i], as_tuple=True)[0]
            rows[m] = idx
            px[m] = self.decoders[m](
                z[idx],
                batch_index[idx],
                library[m][idx],
                None if cat_covs is None else cat_covs[idx],
                None if v is None else v[slice(*self.feature_slices[m])],
            )
        return {"px": px, "rows": rows, **outputs}

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict,
        generative_outputs: dict,
        kl_weight: float = 1.0,
        adversarial_strength: float = 1.0,
    ) -> LossOutput:
        """ELBO with reconstruction masked by presence, plus the adversarial batch term.

        Reconstruction is summed over features and modalities and KL over latent dimensions, per
        cell; both are averaged over the same cells. The discriminator's cross-entropy is added
        with weight 1; the encoder receives its gradient reversed and scaled by
        ``adversarial_strength``. With a guidance graph, ``graph_loss_weight * n_features`` times
        the graph NLL and ``graph_kl_weight`` times the KL of ``q(V)`` are added (logged as
        ``graph_nll`` and ``graph_kl``).
        """
        qz = inference_outputs["qz"]
        n_cells = qz.loc.shape[0]
        reconstruction = {}
        for m in self.modality_names:
            rows = generative_outputs["rows"][m]
            x = select_rows(tensors[modality_registry_key(m)], rows)
            nll = self.decoders[m].negative_log_likelihood(x, generative_outputs["px"][m])
            reconstruction[m] = qz.loc.new_zeros(n_cells).index_add(0, rows, nll)
        kl_z = kl_divergence(qz, Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))).sum(
            -1
        )
        elbo_loss = torch.stack(list(reconstruction.values())).sum(0) + kl_weight * kl_z
        loss = elbo_loss.mean()
        extra_metrics = {}
        if self.discriminator is not None:
            batch_index = tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long()
            logits = self.discriminator(qz.loc, adversarial_strength)
            discriminator_loss = F.cross_entropy(logits, batch_index)
            loss = loss + discriminator_loss
            extra_metrics["discriminator_loss"] = discriminator_loss.detach()
        if self.graph_encoder is not None:
            graph_nll = self.graph_encoder.reconstruction_loss(generative_outputs["v"])
            graph_kl = self.graph_encoder.kl_divergence(generative_outputs["qv"])
            n_features = self.graph_encoder.n_features
            loss = loss + self.graph_loss_weight * n_features * graph_nll
            loss = loss + self.graph_kl_weight * graph_kl
            extra_metrics["graph_nll"] = graph_nll.detach()
            extra_metrics["graph_kl"] = graph_kl.detach()
        return LossOutput(
            loss=loss,
            reconstruction_loss=reconstruction,
            kl_local={"kl_z": kl_z},
            extra_metrics=extra_metrics,
        )
