"""Data splitter for semi-supervised training: labelled cells in every training minibatch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scvi import REGISTRY_KEYS
from torch.utils.data import Sampler, default_convert

from mosaicvi.train._data_splitter import SparseDataSplitter

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scvi.data import AnnDataManager


def labelled_mask(adata_manager: AnnDataManager) -> np.ndarray | None:
    """Boolean mask of the cells with a label, or ``None`` when labels are not used for training.

    Labels are used when the data was set up with an ``unlabeled_category``; scvi-tools codes
    that category last.
    """
    state = adata_manager.get_state_registry(REGISTRY_KEYS.LABELS_KEY)
    if "unlabeled_category" not in state:
        return None
    n_labels = len(state.categorical_mapping) - 1
    codes = np.asarray(adata_manager.get_from_registry(REGISTRY_KEYS.LABELS_KEY)).reshape(-1)
    return codes < n_labels


class LabelledBatchSampler(Sampler):
    """Minibatches with a fixed share of labelled cells.

    Each epoch is a shuffled pass over the unlabelled cells; each minibatch is topped up with
    labelled cells drawn in shuffled rounds over all labelled cells. With 1 % of cells labelled, a plain shuffle puts about one labelled cell in a minibatch of
    128; mmAAVI puts 15-20 %. An epoch is one pass over the unlabelled cells.

    Parameters
    ----------
    labelled
        Boolean mask over the positions of the training cells.
    batch_size
        Minibatch size.
    labelled_fraction
        Share of each minibatch given to labelled cells (at least one).
    """

    def __init__(self, labelled: np.ndarray, batch_size: int, labelled_fraction: float):
        self.labelled = np.flatnonzero(labelled)
        self.unlabelled = np.flatnonzero(~labelled)
        self.n_labelled = max(1, int(batch_size * labelled_fraction))
        self.n_unlabelled = max(1, batch_size - self.n_labelled)

    def __len__(self) -> int:
        return max(1, -(-len(self.unlabelled) // self.n_unlabelled))

    def _labelled_stream(self) -> Iterator[int]:
        while True:
            yield from self.labelled[torch.randperm(len(self.labelled)).numpy()]

    def __iter__(self) -> Iterator[list[int]]:
        order = self.unlabelled[torch.randperm(len(self.unlabelled)).numpy()]
        stream = self._labelled_stream()
        for i in range(len(self)):
            chunk = order[i * self.n_unlabelled : (i + 1) * self.n_unlabelled].tolist()
            yield chunk + [int(next(stream)) for _ in range(self.n_labelled)]


class SemiSupervisedDataSplitter(SparseDataSplitter):
    """:class:`SparseDataSplitter` that oversamples labelled cells when labels are used.

    Every labelled cell is kept for training (none goes to validation: with 1 % of cells
    labelled, each one counts), and each training minibatch holds ``labelled_fraction`` labelled
    cells (:class:`LabelledBatchSampler`). Without labels for training it is a plain
    :class:`SparseDataSplitter`.

    Parameters
    ----------
    adata_manager
        The model's data manager.
    labelled_fraction
        Share of each training minibatch given to labelled cells (mmAAVI: 0.15-0.2).
    **kwargs
        Passed to :class:`SparseDataSplitter`.
    """

    def __init__(self, adata_manager: AnnDataManager, labelled_fraction: float = 0.15, **kwargs):
        super().__init__(adata_manager, **kwargs)
        if not 0.0 < labelled_fraction < 1.0:
            raise ValueError(f"`labelled_fraction` must be in (0, 1), got {labelled_fraction}.")
        self.labelled_fraction = labelled_fraction
        self.labelled = labelled_mask(adata_manager)
        if self.labelled is not None and not self.labelled.any():
            self.labelled = None

    def setup(self, stage: str | None = None):
        """Split as scvi-tools does, then move labelled validation cells to training."""
        super().setup(stage)
        if self.labelled is None:
            return
        moved = self.labelled[self.val_idx]
        self.train_idx = np.concatenate([self.train_idx, self.val_idx[moved]])
        self.val_idx = self.val_idx[~moved]

    def train_dataloader(self):
        """Training minibatches with a share of labelled cells."""
        if self.labelled is None:
            return super().train_dataloader()
        kwargs = dict(self.data_loader_kwargs)
        batch_size = kwargs.pop("batch_size", None) or 128
        kwargs.pop("shuffle", None)
        sampler = LabelledBatchSampler(
            self.labelled[self.train_idx], batch_size, self.labelled_fraction
        )
        # The sampler yields whole minibatches: the loader fetches one per step (batch of one
        # minibatch), which ``_single_minibatch`` unwraps.
        kwargs["collate_fn"] = _single_minibatch
        return self.data_loader_cls(
            self.adata_manager,
            indices=self.train_idx,
            sampler=sampler,
            load_sparse_tensor=self.load_sparse_tensor,
            pin_memory=self.pin_memory,
            **kwargs,
        )


def _single_minibatch(items: list[dict]) -> dict:
    """Collate a "batch" of one minibatch (a dict of arrays) into that minibatch of tensors."""
    return default_convert(items[0])
