"""Building blocks of :class:`~mosaicvi.module.MosaicVAE`."""

from mosaicvi.nn._classifier import LatentClassifier
from mosaicvi.nn._decoder import ModalityDecoder
from mosaicvi.nn._discriminator import BatchDiscriminator, reverse_gradient
from mosaicvi.nn._encoder import ModalityEncoder
from mosaicvi.nn._fusion import FUSIONS, AttentionFusion, MaskedGatedAttention, make_fusion
from mosaicvi.nn._graph_encoder import GraphEncoder
from mosaicvi.nn._input_transforms import (
    CenteredLogRatio,
    LogNormalize,
    TfIdf,
    TfIdfLsi,
    TfIdfWithLsi,
    make_input_transform,
)
from mosaicvi.nn._mixture_of_experts import MixtureOfExperts
from mosaicvi.nn._mixture_of_products import MixtureOfProductsOfExperts
from mosaicvi.nn._mixture_prior import MixturePrior
from mosaicvi.nn._modality_priors import ModalityPriors
from mosaicvi.nn._normal_prior import StandardNormalPrior
from mosaicvi.nn._output_discriminator import OutputDiscriminator, straight_through_sample
from mosaicvi.nn._posterior import FusedPosterior
from mosaicvi.nn._product_of_experts import ProductOfExperts
from mosaicvi.nn._sparse import SparseInputLinear

__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "BatchDiscriminator",
    "FusedPosterior",
    "LatentClassifier",
    "MixtureOfExperts",
    "MixtureOfProductsOfExperts",
    "MixturePrior",
    "ModalityPriors",
    "OutputDiscriminator",
    "ProductOfExperts",
    "StandardNormalPrior",
    "make_fusion",
    "CenteredLogRatio",
    "GraphEncoder",
    "LogNormalize",
    "MaskedGatedAttention",
    "ModalityDecoder",
    "ModalityEncoder",
    "SparseInputLinear",
    "TfIdf",
    "TfIdfLsi",
    "TfIdfWithLsi",
    "make_input_transform",
    "reverse_gradient",
    "straight_through_sample",
]
