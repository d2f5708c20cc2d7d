"""Data splitter for semi-supervised training: labelled cells in every training minibatch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scvi import REGISTRY_KEYS
from torch.utils.data import DistributedSampler, Sampler, default_convert

from mosaicvi.train._data_splitter import SparseDataSplitter
from mosaicvi.train._sharding import distributed_replicas, shard_positions, stream_seed

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
    num_replicas
        Processes of a distributed (DDP) run: each takes every ``num_replicas``-th minibatch of
        one shared shuffle (seeded by ``seed`` and the epoch, so all processes draw the same),
        and all take the same number of minibatches.
    rank
        This process's rank among ``num_replicas``.
    seed
        Seed of the shared shuffle (distributed runs only; otherwise torch's global RNG).
    """

    def __init__(
        self,
        labelled: np.ndarray,
        batch_size: int,
        labelled_fraction: float,
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
    ):
        self.mask = np.asarray(labelled, dtype=bool)
        self.labelled = np.flatnonzero(labelled)
        self.unlabelled = np.flatnonzero(~labelled)
        self.batch_size, self.labelled_fraction = batch_size, labelled_fraction
        self.n_labelled = max(1, int(batch_size * labelled_fraction))
        self.n_unlabelled = max(1, batch_size - self.n_labelled)
        self.num_replicas, self.rank, self.seed, self.epoch = num_replicas, rank, seed, 0

    @property
    def n_batches(self) -> int:
        """Minibatches of one epoch over all processes."""
        return max(1, -(-len(self.unlabelled) // self.n_unlabelled))

    def __len__(self) -> int:
        return -(-self.n_batches // self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the shared shuffle (Lightning calls this at every epoch under DDP)."""
        self.epoch = epoch

    def _permutation(self, n: int, generator: torch.Generator | None) -> np.ndarray:
        return torch.randperm(n, generator=generator).numpy()

    def _labelled_stream(self, generator: torch.Generator | None) -> Iterator[int]:
        while True:
            yield from self.labelled[self._permutation(len(self.labelled), generator)]

    def _generator(self) -> torch.Generator | None:
        """The epoch's random stream: shared by the processes of a DDP job, else global."""
        if self.num_replicas == 1:
            return None
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        return generator

    def _rounds(self) -> int:
        """Minibatches drawn per epoch (each process keeps every ``num_replicas``-th)."""
        return len(self) * self.num_replicas

    def _keeps(self, j: int) -> bool:
        """Whether this process keeps the epoch's ``j``-th minibatch."""
        return j % self.num_replicas == self.rank

    def __iter__(self) -> Iterator[list[int]]:
        generator = self._generator()
        order = self.unlabelled[self._permutation(len(self.unlabelled), generator)]
        stream = self._labelled_stream(generator)
        # Every process draws every minibatch (keeping the shared stream in step) and keeps its
        # share; the last round wraps around so that all get len(self) minibatches.
        for j in range(self._rounds()):
            i = j % self.n_batches
            chunk = order[i * self.n_unlabelled : (i + 1) * self.n_unlabelled].tolist()
            labelled = [int(next(stream)) for _ in range(self.n_labelled)]
            if self._keeps(j):
                yield chunk + labelled


class SemiSupervisedDataSplitter(SparseDataSplitter):
    """:class:`SparseDataSplitter` that oversamples labelled cells when labels are used.

    Every labelled cell is kept for training (none goes to validation: with 1 % of cells
    labelled, each one counts), and each training minibatch holds ``labelled_fraction`` labelled
    cells (:class:`LabelledBatchSampler`). Without labels for training, or with every cell
    labelled, it is a plain :class:`SparseDataSplitter`.

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
        if self.labelled is not None and (self.labelled.all() or not self.labelled.any()):
            # No labelled cells, or only labelled ones (a fully annotated reference): every
            # minibatch is already all of one kind, so scvi-tools' split is kept, with its
            # validation cells (moving them all to training left none to validate on).
            self.labelled = None

    def adjust_split(self) -> None:
        """Move the labelled validation cells of scvi-tools' split to training."""
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
        replicas = distributed_replicas() if kwargs.pop("distributed_sampler", False) else None
        sampler_cls = DistributedLabelledBatchSampler if replicas else LabelledBatchSampler
        sampler = sampler_cls(
            self.labelled[self.train_idx],
            batch_size,
            self.labelled_fraction,
            **(replicas or {}),
        )
        # The sampler yields whole minibatches: the loader fetches one per step (batch of one
        # minibatch), which ``_single_minibatch`` unwraps.
        kwargs["collate_fn"] = _single_minibatch
        loader = self.data_loader_cls(
            self.adata_manager,
            indices=self.train_idx,
            sampler=sampler,
            load_sparse_tensor=self.load_sparse_tensor,
            pin_memory=self.pin_memory,
            **kwargs,
        )
        return self._resident(loader)


class DistributedLabelledBatchSampler(LabelledBatchSampler, DistributedSampler):
    """:class:`LabelledBatchSampler` that shards itself across DDP processes.

    A ``DistributedSampler`` only by type, so that Lightning does not shard it a second time.
    """

    def __init__(self, *args, **kwargs):
        LabelledBatchSampler.__init__(self, *args, **kwargs)

    def sharded(self) -> ShardedLabelledBatchSampler:
        """The same minibatches' make-up drawn from this process's fixed shard only."""
        return ShardedLabelledBatchSampler(
            self.mask,
            self.batch_size,
            self.labelled_fraction,
            num_replicas=self.num_replicas,
            rank=self.rank,
            seed=self.seed,
        )


class ShardedLabelledBatchSampler(LabelledBatchSampler):
    """:class:`LabelledBatchSampler` over one DDP process's fixed shard of the cells.

    The labelled and the unlabelled cells are sharded separately
    (:func:`~mosaicvi.train._sharding.shard_positions`), so that every shard keeps the share
    of labelled cells; each epoch is a pass over the shard's unlabelled cells, in an order of
    this process's own (seeded by the seed, the rank and the epoch). All processes draw the
    same number of minibatches. Used with device-resident data, where each process holds only
    its shard (:attr:`positions`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        shard = {"num_replicas": self.num_replicas, "rank": self.rank, "seed": self.seed}
        self.labelled = self.labelled[shard_positions(len(self.labelled), **shard)]
        self.unlabelled = self.unlabelled[shard_positions(len(self.unlabelled), **shard)]
        #: Every position this sampler can draw.
        self.positions = np.union1d(self.labelled, self.unlabelled)

    def __len__(self) -> int:
        return self.n_batches

    def _generator(self) -> torch.Generator:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.rank, self.epoch))
        self.epoch += 1
        return generator

    def _rounds(self) -> int:
        return self.n_batches

    def _keeps(self, j: int) -> bool:
        return True


def _single_minibatch(items: list[dict]) -> dict:
    """Collate a "batch" of one minibatch (a dict of arrays) into that minibatch of tensors."""
    return default_convert(items[0])
