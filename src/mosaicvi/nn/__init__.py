"""Building blocks of :class:`~mosaicvi.module.MosaicVAE`."""

from mosaicvi.nn._decoder import ModalityDecoder
from mosaicvi.nn._discriminator import BatchDiscriminator, reverse_gradient
from mosaicvi.nn._encoder import ModalityEncoder
from mosaicvi.nn._fusion import MaskedGatedAttention
from mosaicvi.nn._graph_encoder import GraphEncoder
from mosaicvi.nn._input_transforms import (
    CenteredLogRatio,
    LogNormalize,
    TfIdf,
    TfIdfLsi,
    TfIdfWithLsi,
    make_input_transform,
)
from mosaicvi.nn._sparse import SparseInputLinear

__all__ = [
    "BatchDiscriminator",
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
]
