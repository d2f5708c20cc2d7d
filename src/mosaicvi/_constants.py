"""Names shared across the package: registry keys, modality kinds and their defaults."""

from __future__ import annotations

from typing import Final, NamedTuple

#: Prefix of every entry ``setup_mudata`` / ``setup_anndata`` write into ``obsm``.
OBSM_PREFIX: Final = "_mosaicvi"
#: ``obsm`` key of the per-cell presence mask (a DataFrame, one boolean column per modality).
PRESENCE_OBSM_KEY: Final = f"{OBSM_PREFIX}_presence"
#: ``obs`` column setup writes: the modalities each cell measured, joined by ``"+"`` in model
#: order (e.g. ``"rna+atac"``, ``"rna"``), a categorical for plots and tutorials.
MODALITY_SET_OBS_KEY: Final = "modality_set"
#: Registry key of the presence mask.
PRESENCE_KEY: Final = "presence"
#: Registry entry with the feature names of each modality (modality -> list of names).
FEATURE_NAMES_REGISTRY_KEY: Final = "mosaicvi_feature_names"


class _ModuleKeys(NamedTuple):
    """Keys of :class:`~mosaicvi.module.MosaicVAE`'s inference and generative inputs and outputs.

    Inputs are keyword arguments of ``inference`` / ``generative``, so their keys are those
    arguments' names.
    """

    X_KEY: str = "x"
    PRESENCE_KEY: str = "presence"
    BATCH_INDEX_KEY: str = "batch_index"
    CAT_COVS_KEY: str = "cat_covs"
    FEATURE_COLUMNS_KEY: str = "feature_columns"
    Z_KEY: str = "z"
    QZ_KEY: str = "qz"
    QZM_KEY: str = "qzm"
    QZV_KEY: str = "qzv"
    POSTERIOR_KEY: str = "posterior"
    ATTENTION_KEY: str = "attention"
    EMBEDDINGS_KEY: str = "embeddings"
    Z_STRATA_KEY: str = "z_strata"
    CELL_INDEX_KEY: str = "cell_index"
    SAMPLE_WEIGHT_KEY: str = "sample_weight"
    LIBRARY_KEY: str = "library"
    PX_KEY: str = "px"
    ROWS_KEY: str = "rows"
    QV_KEY: str = "qv"
    V_KEY: str = "v"


#: Module input and output keys (as scvi-tools' ``MODULE_KEYS``).
MODULE_KEYS: Final = _ModuleKeys()


class _MetricKeys(NamedTuple):
    """Names under which training logs its metrics (``model.history`` columns)."""

    ELBO_TRAIN: str = "elbo_train"
    ELBO_VALIDATION: str = "elbo_validation"


#: Training metric keys.
METRIC_KEYS: Final = _MetricKeys()


def modality_obsm_key(modality: str) -> str:
    """``obsm`` key holding the aligned counts of ``modality``."""
    return f"{OBSM_PREFIX}_x_{modality}"


def modality_registry_key(modality: str) -> str:
    """Registry key under which the counts of ``modality`` reach the module."""
    return f"x_{modality}"


#: Modality kinds the model knows, with the likelihood each uses by default.
DEFAULT_LIKELIHOOD: Final = {
    "rna": "nb",
    "atac": "bernoulli",
    "adt": "nb",
    "counts": "nb",
}
#: Input transform each kind uses by default (see :mod:`mosaicvi.nn._input_transforms`).
DEFAULT_INPUT_TRANSFORM: Final = {
    "rna": "log_normalize",
    "atac": "tfidf_lsi",
    "adt": "clr",
    "counts": "log_normalize",
}
#: Common modality names (lower case) and the kind they imply.
KIND_ALIASES: Final = {
    "rna": "rna",
    "gex": "rna",
    "gene expression": "rna",
    "gene_expression": "rna",
    "expression": "rna",
    "atac": "atac",
    "peaks": "atac",
    "peak": "atac",
    "chromatin": "atac",
    "adt": "adt",
    "prot": "adt",
    "protein": "adt",
    "proteins": "adt",
    "antibody capture": "adt",
    "antibody_capture": "adt",
    "cite": "adt",
}
