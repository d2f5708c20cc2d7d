"""Plots of MosaicVI data and results."""

from mosaicvi.pl._attention import attention_weights
from mosaicvi.pl._confusion import confusion_matrix
from mosaicvi.pl._differential import differential_heatmap
from mosaicvi.pl._history import training_history
from mosaicvi.pl._imputed import imputed_features
from mosaicvi.pl._presence import modality_presence, presence_table

__all__ = [
    "attention_weights",
    "confusion_matrix",
    "differential_heatmap",
    "imputed_features",
    "modality_presence",
    "presence_table",
    "training_history",
]
