"""MosaicVI: mosaic single-cell multi-omics integration as an scvi-tools model."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scvi
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin, VAEMixin

from mosaicvi._constants import (
    DEFAULT_INPUT_TRANSFORM,
    DEFAULT_LIKELIHOOD,
    FEATURE_NAMES_REGISTRY_KEY,
    PRESENCE_KEY,
    modality_registry_key,
)
from mosaicvi.data._anndata_layout import build_anndata_layout, data_feature_names
from mosaicvi.data._mosaic_layout import build_mosaic_layout
from mosaicvi.model._differential import DifferentialFeaturesMixin
from mosaicvi.model._fields import obs_keys, register_layout
from mosaicvi.model._guidance import default_graph_weight, resolve_guidance_graph
from mosaicvi.model._input_statistics import input_transform_params
from mosaicvi.model._labels import LabelsMixin
from mosaicvi.model._marginal_likelihood import MarginalLikelihoodMixin
from mosaicvi.model._normalized_expression import NormalizedExpressionMixin
from mosaicvi.model._options import per_modality_choice
from mosaicvi.model._outputs import MosaicOutputsMixin
from mosaicvi.model._query_checks import check_same_features
from mosaicvi.model._safe_io import SafeSaveLoadMixin
from mosaicvi.model._safe_training import SafeTrainingMixin
from mosaicvi.model._training import MosaicTrainingMixin
from mosaicvi.module import MosaicVAE
from mosaicvi.nn._input_transforms import INPUT_TRANSFORMS
from mosaicvi.nn._likelihoods import LIKELIHOODS, get_likelihood
from mosaicvi.train import MosaicTrainingPlan, SemiSupervisedDataSplitter

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Literal

    from anndata import AnnData
    from mudata import MuData

    from mosaicvi.data import GuidanceGraph

logger = logging.getLogger(__name__)


class MosaicVI(
    SafeSaveLoadMixin,
    MosaicTrainingMixin,
    SafeTrainingMixin,
    DifferentialFeaturesMixin,
    NormalizedExpressionMixin,
    MarginalLikelihoodMixin,
    LabelsMixin,
    MosaicOutputsMixin,
    VAEMixin,
    UnsupervisedTrainingMixin,
    BaseModelClass,
):
    """Mosaic multimodal VAE: one latent space for cells measured with any subset of modalities.

    Each modality has its own input transform and encoder; a masked gated-attention layer fuses
    the modalities each cell has into ``q(z | x)``; per-modality decoders with batch-specific
    per-feature scale, bias and dispersion reconstruct the counts of the modalities a cell
    measured (NB or ZINB for RNA and ADT, Bernoulli for ATAC); a batch discriminator behind a
    gradient-reversal layer removes batch from ``z``.

    With a guidance graph (:func:`mosaicvi.data.guidance_graph`), every feature also gets an
    embedding ``v_f`` in the latent space from a graph encoder, and the decoders become hybrid,
    ``eta = w z V^T + (1 - w) MLP(z)``: features linked across modalities (a gene and the peaks at
    its promoter, a protein and its gene) are decoded from nearby directions of ``z``. This is what
    places batches that share no modality (RNA-only and ATAC-only) in one space.

    Parameters
    ----------
    adata
        MuData or AnnData registered with :meth:`setup_mudata` or :meth:`setup_anndata`.
    n_latent
        Dimension of the latent space.
    n_hidden
        Width of the encoder layers and modality embeddings.
    n_hidden_decoder
        Width of the decoder layers.
    n_layers_encoder
        Hidden layers per modality encoder.
    n_layers_decoder
        Hidden layers per modality decoder.
    dropout_rate
        Dropout rate.
    likelihoods
        Modality name -> ``"nb"``, ``"zinb"``, ``"poisson"`` or ``"bernoulli"``, overriding the
        defaults (NB for RNA, ADT and generic counts; Bernoulli for ATAC, which models whether
        each peak is open). ``"poisson"`` models counts without extra dispersion, e.g. ATAC
        fragment counts instead of binarised peaks, as scvi-tools' PoissonVI.
    input_transforms
        Modality name -> encoder input transform, overriding the defaults: ``"log_normalize"``
        (RNA, generic counts), ``"tfidf_lsi"`` (ATAC: the binarised TF-IDF of every peak and its
        LSI components, fitted on the training cells, each through its own first layer),
        ``"lsi"`` (the LSI components only), ``"tfidf"`` (the per-peak TF-IDF only) or ``"clr"``
        (ADT). The decoders always model the raw counts.
    n_lsi_components
        Number of LSI components of ``"lsi"`` inputs.
    batch_discriminator
        Train the batch discriminator on the latent space (needs more than one batch).
    modality_dropout
        Probability, during training, of hiding each measured modality of a multi-modality cell
        from the encoders while still reconstructing it (cross-modal prediction; 0 disables).
    closed_feature_fraction
        While training, the fraction of the peaks closed in every cell of a minibatch that enter
        the Bernoulli (ATAC) reconstruction term, each weighted by its inverse, so the term stays
        an unbiased estimate; peaks open in some cell always enter. Most of a step's time is the
        ATAC decoder's output: on a 100,000-cell RNA+ATAC mosaic the default 0.1 trained 1.5x
        as many cells per second as ``1`` (every peak, the exact term), and the SNARE-seq
        mosaic's scib total did not drop (``benchmarks/README.md``).
        Outputs always decode every peak.
    guidance_graph
        A :class:`~mosaicvi.data.GuidanceGraph`, or the key under which
        :func:`~mosaicvi.data.guidance_graph` stored one in the MuData (``"guidance"``). ``None``
        (default): plain MLP decoders, no feature embeddings.
    graph_weight
        Weight ``w`` of ``z V^T`` in the hybrid decoders. ``"auto"``: 0.9 when some modalities
        are measured together in more than 10 cells, 0.99 when no cell pairs them (diagonal
        integration), as mmAAVI.
    fusion
        How the modalities a cell has are combined into ``q(z | x)``: ``"attention"`` (masked
        gated attention, default), ``"poe"`` (product of Gaussian experts with a prior expert),
        ``"moe"`` (mixture of experts, stratified sampling, as MMVAE) or ``"mopoe"`` (mixture of
        products of every subset of experts). Each ignores missing modalities;
        :meth:`get_attention_weights` returns each modality's weight (attention, precision share
        or mixture weight).
    prior
        ``"normal"`` (``N(0, I)``, default), ``"mixture"`` (mmAAVI's mixture prior with
        ``n_clusters`` discrete clusters and a continuous code; :meth:`get_cluster_probabilities`)
        or ``"modality"`` (modality-specific priors: ``N(0, I)`` for the fused posterior, and each
        modality's unimodal posterior ``q(z | x_m)`` also pulled toward a learnt mixture prior of
        its own, see :class:`~mosaicvi.nn.ModalityPriors`). ``"modality"`` regularises what each
        modality alone encodes. On the SNARE-seq mosaic (15 epochs, one seed) it lowered the scib
        total from 0.595 to 0.501 and the cross-modal coherence: prefer the default unless a
        benchmark on your data says otherwise (``benchmarks/README.md``).
    n_clusters
        Clusters of the mixture prior, or of each modality's prior (default: the number of label
        classes when the data was set up with ``unlabeled_category``, else 10).
    classification_weight
        Weight of the labelled cells' cross-entropy (semi-supervised training, see
        ``unlabeled_category`` in :meth:`setup_mudata`).
    cross_modal_weight
        Weight of an extra cross-modal term: for cells with several modalities, each modality
        alone is encoded and decodes the others (0, default: off).
    output_discriminator
        Train, per modality, a discriminator between observed profiles and draws from the decoded
        ones (the same cells' reconstructions and, for cells with several modalities, the
        modality decoded from another one's posterior), with its own optimiser and slower
        learning rate; the decoders are pushed to fool it (D-MMVAE's adversarial term), with a
        warm-up. Off by default; ``output_adversarial_weight`` (module keyword, default 0.001 per
        feature) sets the decoders' term, ``plan_kwargs`` of :meth:`train` take
        ``output_discriminator_lr_factor`` (0.5) and ``n_epochs_output_adversarial_warmup``.
        On the SNARE-seq mosaic (15 epochs, one seed) it made every measure worse, the realism
        of imputed profiles included: scib total 0.595 -> 0.507 at weight 0.001 (0.363 at 0.01),
        imputed ATAC told from real ATAC with AUC 0.98 instead of 0.52
        (``benchmarks/README.md``). Keep it off unless a benchmark on your data says otherwise.
    **module_kwargs
        Passed to :class:`~mosaicvi.module.MosaicVAE` (e.g. ``graph_loss_weight``,
        ``n_graph_negatives``).

    Examples
    --------
    >>> import mosaicvi
    >>> mdata = mosaicvi.data.snareseq()
    >>> mdata = mosaicvi.data.mosaic_split(mdata, {"rna": ["09A", "09B"], "atac": ["09C"]})
    >>> mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    >>> model = mosaicvi.MosaicVI(mdata)
    >>> model.train(max_epochs=5)  # doctest: +SKIP
    >>> mdata.obsm["X_mosaicvi"] = model.get_latent_representation()  # doctest: +SKIP

    Batches that share no modality are tied together with a guidance graph:

    >>> diagonal = mosaicvi.data.mosaic_split(
    ...     mosaicvi.data.snareseq(), {"rna": ["09A", "09B"], "atac": ["09C", "09D"]}
    ... )
    >>> graph = mosaicvi.data.guidance_graph(
    ...     diagonal, links={("rna", "atac"): diagonal["rna"].varm["gene_region_link"]}
    ... )  # doctest: +SKIP
    >>> mosaicvi.MosaicVI.setup_mudata(diagonal, batch_key="batch")
    >>> model = mosaicvi.MosaicVI(diagonal, guidance_graph=graph)  # doctest: +SKIP
    """

    _module_cls = MosaicVAE
    _training_plan_cls = MosaicTrainingPlan
    _data_splitter_cls = SemiSupervisedDataSplitter

    def __init__(
        self,
        adata: MuData | AnnData,
        n_latent: int = 20,
        n_hidden: int = 256,
        n_hidden_decoder: int = 128,
        n_layers_encoder: int = 2,
        n_layers_decoder: int = 2,
        dropout_rate: float = 0.1,
        likelihoods: Mapping[str, Literal["nb", "zinb", "poisson", "bernoulli"]] | None = None,
        input_transforms: Mapping[str, str] | None = None,
        n_lsi_components: int = 50,
        batch_discriminator: bool = True,
        modality_dropout: float = 0.2,
        closed_feature_fraction: float = 0.1,
        guidance_graph: GuidanceGraph | str | None = None,
        graph_weight: float | Literal["auto"] = "auto",
        fusion: Literal["attention", "poe", "moe", "mopoe"] = "attention",
        prior: Literal["normal", "mixture", "modality"] = "normal",
        n_clusters: int | None = None,
        classification_weight: float = 10.0,
        cross_modal_weight: float = 0.0,
        output_discriminator: bool = False,
        **module_kwargs,
    ):
        super().__init__(adata)
        kinds = self.modalities
        chosen = per_modality_choice(
            "likelihoods", kinds, DEFAULT_LIKELIHOOD, likelihoods, tuple(LIKELIHOODS)
        )
        transforms = per_modality_choice(
            "input_transforms",
            kinds,
            DEFAULT_INPUT_TRANSFORM,
            input_transforms,
            tuple(INPUT_TRANSFORMS),
        )
        presence = self.adata_manager.get_from_registry(PRESENCE_KEY)
        presence = np.asarray(presence, dtype=bool)
        n_features, transform_params, library_reference, decoder_bias = {}, {}, {}, {}
        for i, m in enumerate(kinds):
            counts = self.adata_manager.get_from_registry(modality_registry_key(m))
            n_features[m] = counts.shape[1]
            measured = presence[:, i]  # a mask: indexing the counts would copy them
            likelihood = get_likelihood(chosen[m])
            library_reference[m] = likelihood.library_reference(counts, measured)
            decoder_bias[m] = likelihood.initial_bias(counts, measured)
            transform_params[m] = input_transform_params(
                transforms[m],
                counts,
                n_lsi_components,
                seed=scvi.settings.seed or 0,
                rows=measured,
            )
        graph = resolve_guidance_graph(guidance_graph, self.adata, self.feature_names)
        if graph_weight == "auto":
            graph_weight = default_graph_weight(presence)
        cat_state = self.adata_manager.get_state_registry("extra_categorical_covs")
        n_cats_per_cov = list(cat_state.n_cats_per_key) if "n_cats_per_key" in cat_state else None
        self.module = self._module_cls(
            modalities=kinds,
            n_features=n_features,
            n_batch=self.summary_stats.n_batch,
            likelihoods=chosen,
            input_transforms=transforms,
            library_reference=library_reference,
            transform_params=transform_params,
            decoder_bias=decoder_bias,
            n_cats_per_cov=n_cats_per_cov,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_hidden_decoder=n_hidden_decoder,
            n_layers_encoder=n_layers_encoder,
            n_layers_decoder=n_layers_decoder,
            dropout_rate=dropout_rate,
            batch_discriminator=batch_discriminator,
            modality_dropout=modality_dropout,
            closed_feature_fraction=closed_feature_fraction,
            guidance_graph=graph,
            graph_weight=graph_weight,
            fusion=fusion,
            prior=prior,
            n_clusters=n_clusters,
            n_labels=len(self.label_classes),
            classification_weight=classification_weight,
            cross_modal_weight=cross_modal_weight,
            output_discriminator=output_discriminator,
            **module_kwargs,
        )
        graph_summary = (
            f"guidance graph with {graph.nnz - graph.shape[0]} links, decoder weight {graph_weight}"
            if graph is not None
            else "no guidance graph"
        )
        self._model_summary_string = (
            f"MosaicVI: modalities {', '.join(f'{m} ({k}, {chosen[m]})' for m, k in kinds.items())}; "
            f"{self.summary_stats.n_batch} batches; n_latent {n_latent}; "
            f"{int(presence.sum())} measurements over {presence.shape[0]} cells; {graph_summary}; "
            f"fusion {fusion}, prior {prior}"
            + (f", {len(self.label_classes)} label classes." if self.label_classes else ".")
        )
        self.init_params_ = self._get_init_params(locals())

    @property
    def modalities(self) -> dict[str, str]:
        """Modelled modalities: name -> kind, in model order."""
        return dict(self.adata_manager.registry["setup_args"]["modalities"])

    @property
    def feature_names(self) -> dict[str, pd.Index]:
        """Feature names of each modelled modality, in model order."""
        names = self.adata_manager.registry.get(FEATURE_NAMES_REGISTRY_KEY)
        if names is None:
            raise ValueError("The data was set up by an older mosaicvi; run setup again.")
        return {m: pd.Index(names[m]) for m in self.modalities}

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        modalities: Mapping[str, str] | Sequence[str] | None = None,
        layers: Mapping[str, str | None] | str | None = None,
        batch_key: str | None = None,
        labels_key: str | None = None,
        categorical_covariate_keys: list[str] | None = None,
        unlabeled_category: str | None = None,
        **kwargs,
    ) -> None:
        """Register a paired or unpaired (mosaic) MuData.

        Every modality is aligned to ``mdata.obs`` order as a sparse matrix (zero rows for cells
        that did not measure it), and an explicit presence mask is built from which cells each
        modality holds, never from all-zero rows. These go into ``mdata.obsm`` under keys starting
        with ``_mosaicvi``; columns named by ``batch_key``/``labels_key`` that only exist in the
        modalities are pulled into ``mdata.obs``. The modality AnnData objects are not modified,
        and nothing is written when a check fails.

        Parameters
        ----------
        mdata
            MuData whose modalities hold raw counts for subsets (or all) of ``mdata.obs_names``, as
            ``mudata.MuData({"rna": rna, "atac": atac})`` builds it from separate AnnData objects.
        modalities
            Modality name -> kind (``"rna"``, ``"atac"``, ``"adt"`` or ``"counts"`` for any other
            count modality). A list of names, or ``None`` for all modalities, infers the kind from
            common names (rna/gex, atac/peaks, adt/prot/protein).
        layers
            Modality name -> layer holding raw counts (``None``: ``X``), or one name for all.
        batch_key
            Column of ``mdata.obs`` (or of the modalities' ``obs``) with the batch of each cell.
        labels_key
            Column with cell labels (optional).
        categorical_covariate_keys
            Columns with extra categorical covariates, given to the decoders.
        unlabeled_category
            Value of ``labels_key`` that marks unlabelled cells. When given, the model is trained
            semi-supervised on the other cells' labels and :meth:`predict` labels every cell;
            without it, labels are registered but not used for training.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.

        Examples
        --------
        >>> import mosaicvi
        >>> mdata = mosaicvi.data.snareseq()
        >>> mosaicvi.MosaicVI.setup_mudata(
        ...     mdata, modalities={"rna": "rna", "atac": "atac"}, batch_key="batch"
        ... )
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        keys = obs_keys(batch_key, labels_key, categorical_covariate_keys)
        layout = build_mosaic_layout(mdata, modalities, layers, keys)
        cls.register_manager(register_layout(mdata, layout, setup_method_args, keys, **kwargs))

    @classmethod
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        batch_key: str | None = None,
        labels_key: str | None = None,
        feature_type_key: str | None = "feature_types",
        modality: str = "rna",
        categorical_covariate_keys: list[str] | None = None,
        unlabeled_category: str | None = None,
        **kwargs,
    ) -> None:
        """Register one AnnData: a single modality, or several concatenated along ``var``.

        With a ``feature_type_key`` column in ``adata.var`` (Cell Ranger's ``feature_types``:
        ``Gene Expression``, ``Peaks``, ``Antibody Capture``), each feature type becomes a modality
        (``rna``, ``atac``, ``adt``; other types become generic count modalities), and every cell
        is taken to have measured all of them. Without it, the whole matrix is one modality of kind
        ``modality``.

        Parameters
        ----------
        adata
            AnnData with raw counts.
        layer
            Layer holding raw counts (``None``: ``X``).
        batch_key
            Column of ``adata.obs`` with the batch of each cell.
        labels_key
            Column with cell labels (optional).
        feature_type_key
            Column of ``adata.var`` naming each feature's type.
        modality
            Kind of the single modality when there is no ``feature_type_key`` column.
        categorical_covariate_keys
            Columns with extra categorical covariates, given to the decoders.
        unlabeled_category
            Value of ``labels_key`` that marks unlabelled cells (semi-supervised training, see
            :meth:`setup_mudata`).
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        keys = obs_keys(batch_key, labels_key, categorical_covariate_keys)
        layout = build_anndata_layout(adata, layer, feature_type_key, modality, keys)
        cls.register_manager(register_layout(adata, layout, setup_method_args, keys, **kwargs))

    def _validate_anndata(self, adata=None, copy_if_view: bool = True):
        """Set up new data like the training data (same modalities, batch codes) when needed.

        scvi-tools' generic field transfer cannot build the aligned modality matrices and presence
        mask, so new data is set up with this model's own setup method and saved registry. Its
        features must be the training features, in the same order.
        """
        if adata is not None and self.adata_manager is not None:
            manager = self.get_anndata_manager(adata)
            if manager is None:
                registry = self.adata_manager.registry
                setup = getattr(type(self), registry["setup_method_name"])
                setup(adata, source_registry=registry, **registry["setup_args"])
                manager = self._get_most_recent_anndata_manager(adata, required=True)
                self._register_manager_for_instance(manager)
            check_same_features(
                data_feature_names(adata, self.adata_manager.registry["setup_args"]),
                self.feature_names,
            )
        return super()._validate_anndata(adata, copy_if_view)

    def _make_data_loader(self, *args, **kwargs):
        kwargs.setdefault("load_sparse_tensor", True)
        return super()._make_data_loader(*args, **kwargs)
