"""Names shared across the package: registry keys, modality kinds and their defaults."""

from __future__ import annotations

from typing import Final

#: Prefix of every entry ``setup_mudata`` / ``setup_anndata`` write into ``obsm``.
OBSM_PREFIX: Final = "_mosaicvi"
#: ``obsm`` key of the per-cell presence mask (a DataFrame, one boolean column per modality).
PRESENCE_OBSM_KEY: Final = f"{OBSM_PREFIX}_presence"
#: Registry key of the presence mask.
PRESENCE_KEY: Final = "presence"
#: Registry entry with the feature names of each modality (modality -> list of names).
FEATURE_NAMES_REGISTRY_KEY: Final = "mosaicvi_feature_names"


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
