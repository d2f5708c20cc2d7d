"""MosaicVI: mosaic single-cell multi-omics integration as an scvi-tools model.

Every public method of :class:`MosaicVI` is defined here with its documentation; the algorithms
behind them are functions with explicit arguments in the other files of this package.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scvi.data import AnnDataManager
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin, VAEMixin

from mosaicvi._constants import (
    DEFAULT_INPUT_TRANSFORM,
    DEFAULT_LIKELIHOOD,
    FEATURE_NAMES_REGISTRY_KEY,
    PRESENCE_KEY,
)
from mosaicvi.data._anndata_layout import build_anndata_layout
from mosaicvi.model import _checks as checks
from mosaicvi.model import _differential as differential
from mosaicvi.model import _inference as inference
from mosaicvi.model import _labels as labelling
from mosaicvi.model import _normalized_expression as expression
from mosaicvi.model import _options as options
from mosaicvi.model import _query as query
from mosaicvi.model import _query_data as query_data
from mosaicvi.model import _safe_training as safe
from mosaicvi.model._feature_links import feature_links
from mosaicvi.model._fields import obs_keys, register_layout
from mosaicvi.model._guidance import resolve_guidance_graph
from mosaicvi.model._imputation import imputed_anndata
from mosaicvi.model._input_statistics import fitted_statistics
from mosaicvi.model._marginal_likelihood import check_n_mc_samples, marginal_ll
from mosaicvi.model._outputs import model_feature_embeddings
from mosaicvi.model._safe_io import load_model, load_registry, save_model
from mosaicvi.model._training import train_model
from mosaicvi.module import MosaicVAE
from mosaicvi.module._networks import check_module_options
from mosaicvi.nn._input_transforms import INPUT_TRANSFORMS
from mosaicvi.nn._likelihoods import LIKELIHOODS
from mosaicvi.train import MosaicTrainingPlan, SemiSupervisedDataSplitter

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence
    from typing import Literal

    from anndata import AnnData
    from mudata import MuData

    from mosaicvi.data import GuidanceGraph
    from mosaicvi.module._prior_heads import PriorName
    from mosaicvi.nn._fusion import FusionName
    from mosaicvi.nn._input_transforms import InputTransformName
    from mosaicvi.nn._likelihoods import LikelihoodName

logger = logging.getLogger(__name__)


class MosaicVI(VAEMixin, UnsupervisedTrainingMixin, BaseModelClass):
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
        Train the batch discriminator on the latent space (needs more than one batch). Each
        cell's push is ``train(adversarial_strength=)`` x ``min(1, F / n)``, ``F`` its measured
        features (``adversary_full_strength_features=n``, default 1,000; ``None``: one push).
    modality_dropout
        Probability, during training, of hiding each measured modality of a multi-modality cell
        from the encoders while still reconstructing it (cross-modal prediction; 0 disables).
    closed_feature_fraction
        While training, the fraction of the peaks closed in every cell of a minibatch that enter
        the Bernoulli (ATAC) reconstruction term, each weighted by its inverse, so the term stays
        an unbiased estimate; peaks open in some cell always enter. Lower it to train faster on
        many peaks, ``1`` gives the exact term. Outputs always decode every peak.
    guidance_graph
        A :class:`~mosaicvi.data.GuidanceGraph`, or the key under which
        :func:`~mosaicvi.data.guidance_graph` stored one in the MuData; ``None``: MLP decoders.
    graph_kwargs
        Options of the guidance graph (without one they have no effect, with a warning):
        ``"weight"``, of ``z V^T`` in the hybrid decoders, and ``"loss_weight"``, of the
        graph's NLL per feature (both ``"auto"``: 1 and 0.005 on diagonal data as for
        ``prior``; else 0.9 and 0.02 with > 10 paired cells, as mmAAVI); ``"kl_weight"``, of
        the KL of the feature embeddings (0.01); ``"n_positive_edges"``, edges sampled per step
        (4096); ``"n_negatives"``, negative pairs per edge (10). E.g. ``{"weight": 1.0,
        "loss_weight": 0.005}``. Replaces the deprecated ``graph_weight=`` etc. (one per key).
    fusion
        How the modalities a cell has are combined into ``q(z | x)``: ``"attention"`` (masked
        gated attention, default), ``"poe"`` (product of experts with a prior expert), ``"moe"``
        (mixture of experts, as MMVAE) or ``"mopoe"`` (mixture of products of every subset of
        experts). Each ignores missing modalities; :meth:`get_attention_weights` gives weights.
    prior
        ``"auto"`` (default): ``"mixture"`` when some modalities share no paired cell with the
        others and each has >= 1,000 features (diagonal data), else ``"normal"``; stored.
        ``"normal"``: ``N(0, I)``. ``"mixture"``: mmAAVI's mixture prior, ``n_clusters``
        discrete clusters and a continuous code (:meth:`get_cluster_probabilities`).
        ``"modality"``: ``N(0, I)`` for the fused posterior, and each ``q(z | x_m)`` also pulled
        toward a learnt mixture prior of its own (:class:`~mosaicvi.nn.ModalityPriors`).
    n_clusters
        Clusters of the mixture prior, or of each modality's prior (default: the number of label
        classes when the data was set up with ``unlabeled_category``, else 10).
    classification_weight
        Weight of the labelled cells' cross-entropy (semi-supervised training, see
        ``unlabeled_category`` in :meth:`setup_mudata`).
    cross_modal_weight
        Weight of an extra cross-modal term: for cells with several modalities, each modality
        alone is encoded and decodes the others (0, default: off).
    output_discriminator_kwargs
        ``None`` (default): off. A dict (``{}`` for the defaults) trains, per modality, a
        discriminator between observed profiles and draws from the decoded ones (the same cells'
        reconstructions and, for cells with several modalities, the modality decoded from another
        one's posterior), with its own optimiser and slower learning rate; the decoders are pushed
        to fool it (D-MMVAE's adversarial term), with a warm-up. Keys: ``"weight"`` of the
        decoders' term per feature (0.001), ``"lr_factor"``, the discriminators' learning rate
        relative to ``lr`` (0.5), ``"n_epochs_warmup"`` of the decoders' term (default: the KL
        warm-up). Replaces the deprecated ``output_discriminator=True``,
        ``output_adversarial_weight=`` and ``train(plan_kwargs=...)``'s
        ``output_discriminator_lr_factor`` and ``n_epochs_output_adversarial_warmup``. Keep it
        off unless a benchmark on your data says otherwise (the benchmark page compares it).
    **module_kwargs
        Passed to :class:`~mosaicvi.module.MosaicVAE`, e.g. ``n_attention``, ``encode_batch=True``
        (batch-conditioned encoders: :meth:`load_query_data` can then move new batches' cells).

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

    >>> graph = mosaicvi.data.guidance_graph(mdata, gene_coordinates="mm10")  # doctest: +SKIP
    >>> model = mosaicvi.MosaicVI(mdata, guidance_graph=graph)  # doctest: +SKIP
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
        likelihoods: Mapping[str, LikelihoodName] | None = None,
        input_transforms: Mapping[str, InputTransformName] | None = None,
        n_lsi_components: int = 50,
        batch_discriminator: bool = True,
        modality_dropout: float = 0.2,
        closed_feature_fraction: float = 0.1,
        guidance_graph: GuidanceGraph | str | None = None,
        graph_kwargs: dict | None = None,
        fusion: FusionName = "attention",
        prior: PriorName | Literal["auto"] = "auto",
        n_clusters: int | None = None,
        classification_weight: float = 10.0,
        cross_modal_weight: float = 0.0,
        output_discriminator_kwargs: dict | None = None,
        **module_kwargs,
    ):
        super().__init__(adata)
        graph_kwargs, output_discriminator_kwargs, module_kwargs = options.upgrade_options(
            graph_kwargs, output_discriminator_kwargs, module_kwargs
        )
        kinds = self.modalities
        chosen = options.per_modality_choice(
            "likelihoods", kinds, DEFAULT_LIKELIHOOD, likelihoods, tuple(LIKELIHOODS)
        )
        transforms = options.per_modality_choice(
            "input_transforms",
            kinds,
            DEFAULT_INPUT_TRANSFORM,
            input_transforms,
            tuple(INPUT_TRANSFORMS),
        )
        presence = np.asarray(self.adata_manager.get_from_registry(PRESENCE_KEY), dtype=bool)
        prior = options.resolve_prior(prior, presence, self.feature_names)
        check_module_options(
            fusion, prior, modality_dropout, closed_feature_fraction, cross_modal_weight
        )
        graph = resolve_guidance_graph(guidance_graph, self.adata, self.feature_names)
        statistics = fitted_statistics(
            self.adata_manager, chosen, transforms, presence, n_lsi_components
        )
        alignment = options.resolve_alignment(
            module_kwargs, graph_kwargs, presence, self.feature_names, graph, prior
        )
        logger.info("MosaicVI alignment (stored with the model): %s.", alignment)
        self._plan_kwargs = options.plan_options(output_discriminator_kwargs)
        cat_state = self.adata_manager.get_state_registry("extra_categorical_covs")
        n_cats_per_cov = list(cat_state.n_cats_per_key) if "n_cats_per_key" in cat_state else None
        self.module = self._module_cls(
            modalities=kinds,
            **statistics,
            n_batch=self.summary_stats.n_batch,
            likelihoods=chosen,
            input_transforms=transforms,
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
            fusion=fusion,
            prior=prior,
            n_clusters=n_clusters,
            n_labels=len(self.label_classes),
            classification_weight=classification_weight,
            cross_modal_weight=cross_modal_weight,
            **options.module_options(graph_kwargs, output_discriminator_kwargs),
            **module_kwargs,
        )
        self._model_summary_string = (
            f"MosaicVI: modalities {', '.join(f'{m} ({k}, {chosen[m]})' for m, k in kinds.items())}; "
            f"{self.summary_stats.n_batch} batches; n_latent {n_latent}; "
            f"{int(presence.sum())} measurements over {presence.shape[0]} cells; {alignment}; "
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

    @property
    def label_classes(self) -> list[str]:
        """The label classes the model is trained on (empty without ``unlabeled_category``)."""
        return labelling.label_classes(self.adata_manager)

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
        feature_masks: Mapping[str, pd.DataFrame] | None = None,
        **kwargs,
    ) -> None:
        """Register a paired or unpaired (mosaic) MuData.

        Each modality's counts are aligned to ``mdata.obs`` order in ``mdata.obsm`` (keys
        starting with ``_mosaicvi``; zero rows for cells that did not measure it) with a presence
        mask taken from each modality's cells, and ``mdata.obs["modality_set"]`` names the
        modalities each cell measured (``"rna+atac"``, ``"rna"``). ``batch_key``/``labels_key``
        columns found only in the modalities are pulled into ``mdata.obs``. The modalities are not
        modified, and nothing is written when a check fails. The model reads only these copies;
        keep raw counts in a layer (``layers=``) if you normalise ``X`` in place afterwards.

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
            Modality name -> layer holding raw counts (``None``: ``X``), or one name for all, e.g.
            ``{"rna": "counts"}``.
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
        feature_masks
            Modality -> boolean DataFrame, batches x features (``True``: measured; unlisted batches
            measured all), for a modality holding the union of its batches' panels (built with
            :func:`mosaicvi.data.concat_panels`). Unmeasured entries are imputed, never fitted.
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
        layout = query_data.setup_layout(mdata, modalities, layers, keys, **kwargs)
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

        With a ``feature_type_key`` column in ``adata.var`` (Cell Ranger's ``feature_types``), each
        feature type becomes a modality (``rna``, ``atac``, ``adt`` or generic counts) measured by
        every cell; without it, the whole matrix is one modality of kind ``modality``.

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

    @classmethod
    def register_manager(cls, adata_manager: AnnDataManager) -> None:
        """Register the manager, recording a fingerprint of what the model reads of its data."""
        safe.record_fingerprint(adata_manager)
        super().register_manager(adata_manager)

    def get_anndata_manager(self, adata, required: bool = False):
        """scvi-tools' lookup, after checking new data's categories against the training ones."""
        if adata is not None and self.adata_manager is not None and adata is not self.adata:
            safe.check_new_data_categories(adata, self.adata_manager.registry)
        return super().get_anndata_manager(adata, required=required)

    def _validate_anndata(self, adata=None, copy_if_view: bool = True):
        """Set up new data like the training data (scvi-tools' field transfer cannot), check it."""
        if adata is not None and self.adata_manager is not None:
            safe.set_up_like_training(self, adata)
        adata = super()._validate_anndata(adata, copy_if_view)
        safe.check_data_unchanged(self.get_anndata_manager(self.adata if adata is None else adata))
        return adata

    def _make_data_loader(self, *args, **kwargs):
        kwargs.setdefault("load_sparse_tensor", True)
        return super()._make_data_loader(*args, **kwargs)

    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 2e-3,
        batch_size: int = 128,
        early_stopping: bool = True,
        early_stopping_patience: int = 20,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float | None = None,
        validation_size: float | None = None,
        n_epochs_kl_warmup: int | None = None,
        adversarial_strength: float = 5.0,
        n_epochs_adversarial_warmup: int | None = None,
        n_importance_samples: int = 1,
        checkpoint_dir: str | os.PathLike | None = None,
        check_loss_every_n_steps: int | None = None,
        load_data_on_device: bool | Literal["auto"] = "auto",
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train the model (on the GPU when one is available), with a progress bar.

        Parameters
        ----------
        max_epochs
            Passes through the data; default ~1.2 million cell visits (20 to 400 epochs); a query
            model's first fit (:meth:`load_query_data`): a quarter of the reference's cell visits.
        lr, batch_size
            Learning rate (Adam) and minibatch size.
        early_stopping, early_stopping_patience
            Stop when the validation ELBO has not improved for ``early_stopping_patience`` epochs
            (off when ``max_steps`` ends training within the first epoch).
        accelerator, devices
            Lightning's ``"auto"``, ``"cpu"``, ``"gpu"``...; an int, a list of indices or ``"auto"``.
        train_size, validation_size
            Fractions of cells for training (default 0.9) and validation (default: the rest).
        n_epochs_kl_warmup
            Epochs over which the KL weight goes from 0 to 1 (default: ``max_epochs / 4``, <= 50).
        adversarial_strength
            Strength of the batch-adversarial gradient on the encoder (0 disables its effect).
        n_epochs_adversarial_warmup
            Epochs over which the adversarial strength ramps up (default: as the KL warm-up).
        n_importance_samples
            ``K > 1``: the importance-weighted bound, ``K`` stratified draws per component, DReG
            gradients (``plan_kwargs={"importance_gradient": "iwae"}``: IWAE); with
            ``prior="normal"`` or ``"modality"``. ``1``: the ELBO.
        checkpoint_dir
            Directory for ``last.ckpt`` (weights, optimiser, loop state), written every epoch;
            ``train(ckpt_path=f"{checkpoint_dir}/last.ckpt")`` resumes (only from files you wrote).
        check_loss_every_n_steps
            Steps between checks that the loss is finite (else a ``FloatingPointError`` naming
            the term). ``None``: every step on the CPU, every 50 elsewhere.
        load_data_on_device
            Keep the data on the GPU and gather minibatches there; ``"auto"``: when they fit.
        plan_kwargs
            Passed to :class:`~mosaicvi.train.MosaicTrainingPlan` (override the arguments above).
        datasplitter_kwargs
            Passed to :class:`~mosaicvi.train.SparseDataSplitter`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (e.g. ``check_val_every_n_epoch``,
            ``callbacks``, ``ckpt_path``, ``max_steps``, ``strategy="ddp"`` with ``num_nodes``).

        Notes
        -----
        Training first checks that the data the model reads was not edited since setup and that
        no batch has a single cell. Ctrl+C stops cleanly, keeping the best epoch's weights.
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"], arguments["trainer_kwargs"]
        arguments = query.query_train_arguments(self, arguments)  # a query's own defaults
        return train_model(self, **arguments, **trainer_kwargs)

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        mc_samples: int = 5_000,
        batch_size: int | None = None,
        return_dist: bool = False,
        modalities: Sequence[str] | None = None,
        dataloader=None,
        **data_loader_kwargs,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Latent representation of each cell, from all its modalities or from chosen ones.

        Parameters
        ----------
        adata, indices
            Data set up like the training data (default: it), and the cells to use (default: all).
        give_mean, return_dist
            Return the posterior means (else one sample), or means and variances.
        mc_samples
            Unused (kept for scvi-tools compatibility).
        batch_size
            Minibatch size (default: scvi-tools' setting).
        modalities
            Encode each cell from these modalities only (e.g. ``["rna"]``): with paired data, the
            RNA-only and ATAC-only codes of the same cells show how well they are aligned. Every
            selected cell must have measured one of them. ``None``: every modality it has.
        dataloader
            Minibatches to encode instead (``adata``, ``indices``, ``batch_size``, ``modalities``
            are then unused).
        **data_loader_kwargs
            Passed to the data loader.

        Returns
        -------
        Array ``(n_cells, n_latent)``, or ``(means, variances)`` with ``return_dist``.

        Examples
        --------
        >>> mdata.obsm["X_mosaicvi"] = model.get_latent_representation()  # doctest: +SKIP
        >>> z_rna = model.get_latent_representation(paired, modalities=["rna"])  # doctest: +SKIP
        """
        if dataloader is None:
            _, dataloader = inference.cells_loader(
                self, adata, indices, batch_size, modalities, **data_loader_kwargs
            )
        else:
            self._check_if_trained(warn=False)
        return inference.latent_representation(self.module, dataloader, give_mean, return_dist)

    @torch.inference_mode()
    def get_attention_weights(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Attention weight of each modality in each cell's latent code.

        Parameters
        ----------
        adata, indices, batch_size
            As :meth:`get_latent_representation`.

        Returns
        -------
        DataFrame (cells x modalities); weights are 0 for modalities a cell lacks and sum to 1.
        """
        return inference.model_attention_weights(self, adata, indices, batch_size)

    def predict(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        soft: bool = False,
        batch_size: int | None = None,
    ) -> pd.Series | pd.DataFrame:
        """Predicted label of every cell, from any modalities it has (semi-supervised models).

        Needs setup with ``labels_key`` and ``unlabeled_category``; ``q(label | z)`` is read at
        each cell's posterior mean, so cells sharing no modality with labelled ones get labels.

        Parameters
        ----------
        adata, indices, batch_size
            As :meth:`get_latent_representation`.
        soft
            Return the probability of every class instead of the most probable one.

        Returns
        -------
        A Series of labels indexed by cell, or with ``soft`` a DataFrame (cells x classes) whose
        rows sum to 1.

        Examples
        --------
        >>> mdata.obs["predicted"] = model.predict()  # doctest: +SKIP
        """
        return labelling.model_predictions(self, adata, indices, soft, batch_size)

    def get_cluster_probabilities(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """``q(c | z)`` of the mixture prior at each cell's posterior mean.

        Parameters
        ----------
        adata, indices, batch_size
            As :meth:`get_latent_representation`.

        Returns
        -------
        DataFrame (cells x clusters) whose rows sum to 1. With labels, the first clusters are the
        label classes (named after them); the others are ``cluster_<k>``.

        Examples
        --------
        >>> mdata.obs["cluster"] = model.get_cluster_probabilities().idxmax(1)  # doctest: +SKIP
        """
        labelling.check_mixture_prior(self.module.prior_name)
        return labelling.model_predictions(self, adata, indices, True, batch_size, clusters=True)

    def get_marginal_ll(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_mc_samples: int = 100,
        batch_size: int | None = None,
        return_mean: bool = False,
        n_mc_samples_per_pass: int | None = None,
    ) -> np.ndarray | float:
        """Importance-sampled estimate of ``log p(x)`` of each cell, over the modalities it has.

        ``log 1/S sum_s p(x_present | z_s) p(z_s) / q(z_s | x)`` (the fused posterior as proposal,
        measured modalities at observed libraries): a lower bound that tightens with
        ``n_mc_samples``, above the ELBO on average (nats). Compares models on the same cells.

        Parameters
        ----------
        adata, indices
            Data set up like the training data (default: it), and the cells to use (default: all).
        n_mc_samples
            Importance samples per posterior component.
        batch_size
            Cells per minibatch (default: scvi-tools' setting).
        return_mean
            Return the mean over cells instead of one value per cell.
        n_mc_samples_per_pass
            Samples decoded at once (default: as many as keep about 4,096 decoded rows).

        Returns
        -------
        ``log p(x)`` estimates ``(n_cells,)``, in the order of ``indices`` (or their mean).

        Examples
        --------
        >>> model.train(n_importance_samples=5)  # doctest: +SKIP
        >>> mdata.obs["log_px"] = model.get_marginal_ll(n_mc_samples=100)  # doctest: +SKIP
        """
        check_n_mc_samples(n_mc_samples)
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        log_px = marginal_ll(self.module, loader, n_mc_samples, n_mc_samples_per_pass)
        return float(log_px.mean()) if return_mean else log_px

    def measuring_batches(self, modality: str) -> list[str]:
        """Batches in which some training cell measured ``modality``, in category order.

        Only these batches have trained decoder parameters (scale, bias, dispersion) for the
        modality, so only these can be decoded into.

        Examples
        --------
        >>> model.measuring_batches("atac")  # doctest: +SKIP
        ['09A', '09B', '09C', '09D', '09I', '09J', '09K', '09L']
        """
        modality = checks.check_modality(modality, self.modalities)
        return checks.measuring_batch_names(self.adata_manager, modality, self.modalities)

    def get_normalized_expression(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        modality: str | None = None,
        transform_batch: str | Sequence[str] | None = None,
        feature_list: Sequence[str] | None = None,
        library_size: float | Literal["median", "cell"] | None = None,
        n_samples: int = 1,
        n_samples_overall: int | None = None,
        use_z_mean: bool = False,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool = False,
        modalities: Sequence[str] | None = None,
        gene_list: Sequence[str] | None = None,
    ) -> pd.DataFrame | np.ndarray:
        """Normalised values of one modality for every cell, whether or not it measured it.

        Each cell is encoded from the modalities it measured and ``modality`` decoded from its
        code (imputed where the cell lacks it), at one library (per cell: ``library_size="cell"``).
        :meth:`get_imputed` gives the same values as an AnnData for scanpy.

        Parameters
        ----------
        adata, indices
            Data set up like the training data (default: it), and the cells to use (default: all).
        modality
            Name of the modality to decode (required), e.g. ``"rna"`` or ``"atac"``.
        transform_batch
            Batch (or list of batches, averaged) to decode into, for batch-corrected values. Only
            batches that measured ``modality`` (:meth:`measuring_batches`) are allowed: the others
            have no trained decoder parameters for it. ``None``: each cell's own batch when that
            batch measured ``modality``, else the average over the batches that did.
        feature_list
            Features to return (default: all features of ``modality``).
        library_size
            Library to decode at. ``None``: 1 for count modalities (as scVI), for ATAC the median
            open peaks of its measuring cells; ``"median"``: the measuring cells' median library;
            ``"cell"``: each cell's own, or where it lacks ``modality`` the one its other
            modalities' libraries predict (the hidden profile's likely depth). Or a number.
        n_samples
            Posterior samples of ``z`` per cell.
        n_samples_overall
            Instead of every cell: this many draws of (random cell, posterior sample), as
            scvi-tools' DE asks for; an array ``(n_samples_overall, n_features)``.
        use_z_mean
            Decode the posterior mean of ``z`` instead of samples.
        batch_size
            Minibatch size (default: scvi-tools' setting).
        return_mean
            With ``n_samples > 1``, average over samples (else return all samples).
        return_numpy
            Return a numpy array instead of a DataFrame (cells x features).
        modalities
            Encode each cell from these modalities only: ``modality="rna", modalities=["atac"]``
            imputes RNA from ATAC alone, also for paired cells (cross-modal coherence). Every
            selected cell must have measured one of them. ``None``: every modality it has.
        gene_list
            scvi-tools' name for ``feature_list`` (give one of them).

        Returns
        -------
        DataFrame (cells x features), or an array; ``(n_samples, n_cells, n_features)`` with
        ``n_samples > 1`` and ``return_mean=False``.

        Examples
        --------
        >>> atac = model.get_normalized_expression(modality="atac")  # doctest: +SKIP
        >>> rna = model.get_normalized_expression(modality="rna", transform_batch="09A")
        ... # doctest: +SKIP
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"]
        return expression.model_normalized_expression(self, **arguments)

    def posterior_predictive_sample(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        modality: str | None = None,
        n_samples: int = 1,
        library_size: float | Literal["median", "cell"] = "median",
        feature_list: Sequence[str] | None = None,
        batch_size: int | None = None,
        modalities: Sequence[str] | None = None,
        use_z_mean: bool = False,
        gene_list: Sequence[str] | None = None,
    ) -> np.ndarray:
        """Counts of ``modality`` drawn from the model for every cell (imputed where missing).

        ``(cells, features)`` or ``(n_samples, cells, features)``: ``z`` from each posterior, then
        counts from the likelihood at ``library_size``, in a batch that measured ``modality``.

        Parameters
        ----------
        adata, indices, batch_size, modalities, feature_list, use_z_mean, gene_list
            As :meth:`get_normalized_expression`.
        modality
            The modality to draw (required).
        n_samples
            Draws per cell.
        library_size
            As :meth:`get_normalized_expression` (``"median"``, ``"cell"`` or a number).
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"]
        return expression.posterior_predictive(self, **arguments)

    @torch.inference_mode()
    def get_imputed(
        self,
        modality: str,
        adata: MuData | AnnData | None = None,
        feature_list: Sequence[str] | None = None,
        threshold: float | None = None,
        dense: bool | None = None,
        transform_batch: str | Sequence[str] | None = None,
        library_size: float | Literal["median"] | None = None,
        use_z_mean: bool = True,
        batch_size: int | None = None,
        gene_list: Sequence[str] | None = None,
    ) -> AnnData:
        """``modality`` decoded for every cell, as an AnnData ready for scanpy.

        :meth:`get_normalized_expression`'s values (at the posterior mean by default), computed
        by minibatch, for all cells in ``obs`` order, with the modality's ``var``, the data's
        ``obs``, ``obsm`` and colours (``sc.pl.umap``, ``sc.tl.rank_genes_groups`` take it as is)
        and ``obs["measured"]``: True where the cell measured ``modality`` (denoised values).

        Parameters
        ----------
        modality
            The modality to impute, e.g. ``"atac"`` or ``"rna"``.
        adata, feature_list, transform_batch, library_size, use_z_mean, batch_size, gene_list
            As :meth:`get_normalized_expression`.
        threshold
            In a sparse result, values below it become 0 (as MULTIVI). ``None``: for binary
            modalities (ATAC) 5 times the average of a typical cell (``library_size`` / number of
            peaks), which keeps its likely open peaks and a small result; else 0.
        dense
            Return a dense ``X``. ``None``: sparse for binary likelihoods (ATAC), else dense.

        Returns
        -------
        AnnData (cells x features); ``uns["mosaicvi_imputed"]`` records modality, library and
        threshold.

        Examples
        --------
        >>> atac = model.get_imputed("atac")  # doctest: +SKIP
        >>> sc.pl.umap(atac, color=["chr1_5019221_5019674", "measured"])  # doctest: +SKIP
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"]
        return imputed_anndata(self, **arguments)

    def differential_features(
        self,
        groupby: str | None,
        modality: str,
        group1: str | Sequence[str] | None = None,
        group2: str | None = None,
        mode: Literal["change", "vanilla"] = "change",
        delta: float | None = None,
        fdr_target: float = 0.05,
        batch_correction: bool = True,
        n_samples: int = differential.N_DE_SAMPLES,
        adata: MuData | AnnData | None = None,
        pseudocounts: float | None = None,
        change: Literal["log-fold", "difference"] | None = None,
        library_size: float | Literal["median"] | None = None,
        threshold_counts: float = 0.01,
        batch_size: int | None = None,
        key_added: str | None = "rank_features_mosaicvi",
        all_stats: bool = True,
        silent: bool = False,
        idx1: Sequence[int] | Sequence[bool] | str | None = None,
        idx2: Sequence[int] | Sequence[bool] | str | None = None,
        batchid1: Sequence[str] | None = None,
        batchid2: Sequence[str] | None = None,
        compare: Literal["populations", "cells"] = "populations",
        **kwargs,
    ) -> pd.DataFrame:
        """Bayes-factor test of every feature of ``modality`` between groups of cells.

        Decoded values (:meth:`get_normalized_expression`) of each group's cells, imputed ones
        included, are compared with scvi-tools' Bayes factors (``"change"`` as Boyeau et al.,
        ``"vanilla"`` as Lopez et al.); raw statistics use only cells that measured ``modality``.
        Defaults per modality: RNA as scVI (proportions, log2 fold change, ``delta=0.25``,
        estimated pseudocounts); ATAC: probabilities, effect ``p1 - p2``, ``delta=0.05``; ADT:
        counts at the median library, log2 fold change, prior count 1. ``proba_de`` is then the
        probability that the *groups' means* differ by more than ``delta`` (``compare``; the
        :doc:`/outputs` page says what ``delta`` and the FDR mean per modality).

        Parameters
        ----------
        groupby
            Column of ``adata.obs`` with the groups (``None`` with ``idx1``).
        modality
            Modality to test, e.g. ``"rna"``, ``"atac"`` or ``"adt"``.
        group1, group2
            Group(s) of ``groupby`` to test, each in turn, against ``group2``; ``None``: every
            group, and all other cells with a group.
        mode
            ``"change"`` (effect size beyond ``delta``) or ``"vanilla"`` (``P(x1 > x2)``).
        delta
            Smallest effect that counts as differential; ``None``: the modality's default.
        fdr_target
            Target posterior expected FDR of the ``is_de_fdr_<fdr_target>`` column.
        batch_correction
            Decode every cell into each batch that measured ``modality`` and pair samples within
            batches; else decode into observed batches.
        n_samples
            Posterior samples per group (``n_samples_overall``): steadier, slower when larger.
        adata, batch_size
            As :meth:`get_latent_representation`.
        pseudocounts, change, library_size
            Offset of the log fold change; ``"log-fold"`` or ``"difference"``; the library to
            decode at (:meth:`get_normalized_expression`). ``None``: the modality's defaults.
        threshold_counts
            Raw mean below which a feature is unexpressed when pseudocounts are estimated.
        key_added
            Also store the result in ``uns[key_added]`` of the modality's AnnData as
            :func:`scanpy.tl.rank_genes_groups` (scores: log Bayes factors, ``pvals``: ``1 -
            proba_de``, ``pvals_adj``: posterior expected FDR; ``groupby`` copied to ``obs``).
        all_stats, silent
            Add each group's raw statistics over its measuring cells; hide the progress bar.
        idx1, idx2
            Cells of groups 1 and 2 instead of ``groupby`` (as scvi-tools): boolean masks, cell
            positions or ``obs`` queries (``"cell_type == 'Ast'"``); ``idx2=None``: all other
            cells. The groups are named ``"idx1"``, ``"idx2"`` (``"rest"``); ``uns`` is unchanged.
        batchid1, batchid2
            Batches to decode group 1 (2) into, among those that measured ``modality``.
        compare
            ``"populations"``: the groups' decoded means, their sampling error over measuring
            cells and an empirical-Bayes prior over all features (calibrated FDR). ``"cells"``:
            scvi-tools' test, whether a random cell of group 1 differs from one of group 2.
        **kwargs
            Passed to scvi-tools' ``get_bayes_factors`` (e.g. ``test_mode``).

        Returns
        -------
        A row per feature and comparison, sorted by ``proba_de`` (vanilla: ``bayes_factor``):
        scvi-tools' columns (``proba_de``, ``scale1/2``, ``lfc_mean``, ``raw_mean1/2``,
        ``is_de_fdr_<fdr_target>``, ``group1``, ...), ``n_measured1/2``, ``effect(_se)``.

        Examples
        --------
        >>> de = model.differential_features("cell_type", "rna")  # doctest: +SKIP
        >>> de[de["is_de_fdr_0.05"] & (de["effect"] > 0)].groupby("group1").head(5)  # doctest: +SKIP
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"], arguments["kwargs"]
        return differential.differential_features(self, **arguments, **kwargs)

    def differential_expression(
        self,
        adata: MuData | AnnData | None = None,
        groupby: str | None = None,
        group1: str | Sequence[str] | None = None,
        group2: str | None = None,
        idx1: Sequence[int] | Sequence[bool] | str | None = None,
        idx2: Sequence[int] | Sequence[bool] | str | None = None,
        mode: Literal["change", "vanilla"] = "change",
        delta: float | None = None,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = True,
        batchid1: Sequence[str] | None = None,
        batchid2: Sequence[str] | None = None,
        fdr_target: float = 0.05,
        silent: bool = False,
        modality: str | None = None,
        n_samples: int = differential.N_DE_SAMPLES,
        key_added: str | None = None,
        **kwargs,
    ) -> pd.DataFrame:
        """Differential expression with scvi-tools' arguments (:meth:`differential_features`).

        scvi-tools' arguments, order and columns, on the RNA modality by default. Proteins:
        ``modality="adt"``, not totalVI's ``protein_list``, since each modality has its own effect,
        library and ``delta`` defaults. Unlike scvi-tools, ``mode="change"`` and
        ``batch_correction=True`` are the defaults: a mosaic decodes only into measuring batches.

        Parameters
        ----------
        adata, groupby, group1, group2, idx1, idx2, mode, delta, batch_size, all_stats
            As :meth:`differential_features`.
        batch_correction, batchid1, batchid2, fdr_target, silent, n_samples, key_added
            As :meth:`differential_features` (``key_added=None``: nothing is written).
        modality
            Modality to test (default: the RNA modality), e.g. ``"adt"`` for proteins.
        **kwargs
            :meth:`differential_features`' other arguments, or scvi-tools' ``get_bayes_factors``.

        Examples
        --------
        >>> de = model.differential_expression(idx1="cell_type == 'Ast'")  # doctest: +SKIP
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"], arguments["kwargs"]
        return differential.named_differential(self, "expression", **arguments, **kwargs)

    def differential_accessibility(
        self,
        adata: MuData | AnnData | None = None,
        groupby: str | None = None,
        group1: str | Sequence[str] | None = None,
        group2: str | None = None,
        idx1: Sequence[int] | Sequence[bool] | str | None = None,
        idx2: Sequence[int] | Sequence[bool] | str | None = None,
        mode: Literal["change", "vanilla"] = "change",
        delta: float | None = None,
        batch_size: int | None = None,
        all_stats: bool = True,
        batch_correction: bool = True,
        batchid1: Sequence[str] | None = None,
        batchid2: Sequence[str] | None = None,
        fdr_target: float = 0.05,
        silent: bool = False,
        modality: str | None = None,
        n_samples: int = differential.N_DE_SAMPLES,
        key_added: str | None = None,
        **kwargs,
    ) -> pd.DataFrame:
        """Differential accessibility with MULTIVI's arguments (:meth:`differential_features`).

        As :meth:`differential_expression`, on ATAC (the first binary modality) by default, plus
        MULTIVI's ``prob_da``, ``is_da_fdr``, ``est_prob1/2``, ``effect_size``, ``emp_mean1/2``
        = ``emp_prob1/2`` (measured open fractions) and ``emp_effect``; as in MULTIVI, effects
        are group 2 minus group 1, unlike ``lfc_mean``.

        Parameters
        ----------
        adata, groupby, group1, group2, idx1, idx2, mode, delta, batch_size, all_stats
            As :meth:`differential_features`.
        batch_correction, batchid1, batchid2, fdr_target, silent, n_samples, key_added, **kwargs
            As :meth:`differential_expression`.
        modality
            Modality to test (default: ATAC).
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"], arguments["kwargs"]
        return differential.named_differential(self, "accessibility", **arguments, **kwargs)

    def differential_abundance(
        self,
        adata: MuData | AnnData | None = None,
        sample_key: str | None = None,
        batch_size: int = 128,
        num_cells_posterior: int | None = None,
        dof: float | None = None,
    ) -> pd.DataFrame:
        """Log density of every cell under each sample's aggregated posterior (scvi-tools).

        Per sample, a mixture of its cells' posteriors (scvi-tools' method); a cell's log density
        under it says how typical its state is of that sample (compare conditions per state).

        Parameters
        ----------
        adata, batch_size
            Data set up like the training data (default: it), and minibatch size.
        sample_key
            Column of ``obs`` with the samples (e.g. ``"batch"``).
        num_cells_posterior, dof
            At most this many cells per sample form its aggregated posterior (default: all),
            of Student's t components with ``dof`` degrees of freedom (``None``: normal).

        Returns
        -------
        DataFrame (cells x samples) of log densities, also in ``obsm["da_log_probs"]``.
        """
        arguments = dict(locals())  # every argument above, passed on by name
        del arguments["self"]
        return differential.differential_abundance(self, **arguments)

    def get_feature_embeddings(
        self, key_added: str | None = None, return_std: bool = False
    ) -> dict[str, pd.DataFrame]:
        """Embedding of every feature in the latent space (models with a guidance graph).

        Feature ``f`` is decoded from ``z . v_f``: linked features get nearby embeddings.

        Parameters
        ----------
        key_added
            Also write the means to ``varm[key_added]`` of each modality (with ``return_std`` the
            standard deviations to ``varm[key_added + "_std"]``).
        return_std
            Return the posterior standard deviations instead of the means.

        Returns
        -------
        Modality -> DataFrame (features x latent dimensions).

        Examples
        --------
        >>> model.get_feature_embeddings(key_added="X_mosaicvi")["rna"].loc["Gad1"]
        ... # doctest: +SKIP
        """
        return model_feature_embeddings(self, key_added, return_std)

    def get_feature_links(
        self,
        features: str | Sequence[str] | None = None,
        modalities: Sequence[str] | None = None,
        min_similarity: float | None = None,
    ) -> pd.DataFrame:
        """Links of the guidance graph between modalities, scored by the trained model.

        Every graph edge between two modalities (a gene and a peak near it, a protein and its
        gene) with the cosine similarity of the two learned feature embeddings
        (:meth:`get_feature_embeddings`): links the data supports end up similar. Use it to rank
        candidate regulatory links, e.g. the peaks near a marker gene the model ties to it.

        Parameters
        ----------
        features
            Keep links with one of these features at either end (default: all links).
        modalities
            Keep links between these modalities only (e.g. ``["rna", "atac"]``).
        min_similarity
            Keep links whose similarity is at least this (between -1 and 1).

        Returns
        -------
        DataFrame, strongest first: ``source``, ``target`` (model order: gene then peak),
        ``source_modality``, ``target_modality``, ``similarity``, ``distance`` (bp, 0 when they
        overlap; NaN unless both have coordinates, from ``var`` chrom/start/end or ``interval``
        or names like ``chr1_100_200``, on one chromosome), and the graph's ``weight``, ``sign``.

        Examples
        --------
        >>> model.get_feature_links(features="Gad1").head()  # doctest: +SKIP
        """
        return feature_links(self, features, modalities, min_similarity)

    def save(
        self,
        dir_path: str | os.PathLike,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **anndata_write_kwargs,
    ) -> None:
        """Save the model: weights (tensors only) and a JSON manifest, optionally the data.

        Parameters
        ----------
        dir_path
            Directory to write to (created if needed).
        prefix
            Prefix of the file names.
        overwrite
            Write into an existing directory, replacing the model files.
        save_anndata
            Also write the model's data (``mdata.h5mu`` or ``adata.h5ad``).
        **anndata_write_kwargs
            Passed to the data's ``write``.
        """
        save_model(self, dir_path, prefix, overwrite, save_anndata, **anndata_write_kwargs)

    @classmethod
    def load(
        cls,
        dir_path: str | os.PathLike,
        adata: MuData | AnnData | None = None,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
    ) -> MosaicVI:
        """Load a model saved by :meth:`save`; pickles and other features raise a ValueError.

        Parameters
        ----------
        dir_path
            Directory the model was saved to.
        adata
            Data with the training features (same modalities, names and order); it is set up like
            the training data. ``None``: the data saved with the model (``save_anndata=True``).
        accelerator, device
            Lightning's ``"auto"``, ``"cpu"``, ``"gpu"``, ...; a device index or ``"auto"``.
        prefix
            Prefix of the file names.
        """
        return load_model(cls, dir_path, adata, accelerator, device, prefix)

    load_query_data = classmethod(query.load_query_data)
    prepare_query_mudata = classmethod(query_data.prepare_query_mudata)
    prepare_query_anndata = classmethod(query_data.prepare_query_anndata)

    @classmethod
    def load_registry(cls, dir_path: str | os.PathLike, prefix: str | None = None) -> dict:
        """The scvi-tools registry saved with a model (read from its JSON manifest)."""
        return load_registry(dir_path, prefix)

    @classmethod
    def view_setup_args(cls, dir_path: str | os.PathLike, prefix: str | None = None) -> None:
        """Print the arguments the saved model's data was set up with."""
        AnnDataManager.view_setup_method_args(load_registry(dir_path, prefix))

    @classmethod
    def convert_legacy_save(cls, *args, **kwargs) -> None:
        """Not supported: legacy scvi-tools files are pickles, which mosaicvi does not open."""
        raise NotImplementedError(
            "mosaicvi does not convert pickled scvi-tools model files (they can run code). "
            "Train the model again, or load it in a trusted session and `save()` it."
        )
