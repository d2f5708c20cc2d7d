"""Training: the training plan and the data splitter of :class:`~mosaicvi.MosaicVI`."""

from mosaicvi.train._data_splitter import SparseDataSplitter
from mosaicvi.train._labelled_splitter import SemiSupervisedDataSplitter
from mosaicvi.train._output_adversary import OutputAdversaryPlanMixin
from mosaicvi.train._training_plan import MosaicTrainingPlan

__all__ = [
    "MosaicTrainingPlan",
    "OutputAdversaryPlanMixin",
    "SemiSupervisedDataSplitter",
    "SparseDataSplitter",
]
