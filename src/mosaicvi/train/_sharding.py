"""Per-process shards of the cells for device-resident data under DDP.

With scvi-tools' loader, each DDP process draws its minibatches from one shuffle of *all*
training cells, reshuffled every epoch (``DistributedSampler``): over the epochs a process
draws every cell, so a process that keeps the data on its device must hold all of them. With
device-resident data each process instead holds a **fixed shard**: a seeded random
``1 / num_replicas`` of the training cells (and the validation cells its validation sampler
reads), reshuffled within the shard every epoch.

Why this is sound: each epoch still visits every training cell once (over the processes), each
synchronised step averages the gradients of one minibatch per shard, and the shards are random
samples of the training cells (not contiguous ranges, which follow the order of the data and
often its batches), so each process's minibatches are random samples of the data as before; a
synchronised step is a stratified sample of ``num_replicas x batch_size`` cells, an unbiased
estimate of the full gradient. What changes is that two cells of different shards never meet in
one process's minibatch, which matters only for terms that couple the cells of a minibatch
(none in MosaicVI's loss: it is a mean of per-cell terms, the adversary judges each cell
alone, and the layers normalise per cell). This is how sharded input pipelines (e.g. one file
per worker) train; the gain is that each device holds ``1 / num_replicas`` of the data.

Shards are padded by wrapping around (as ``DistributedSampler`` pads) so that every process has
the same number of cells and minibatches; the padding repeats at most ``num_replicas - 1`` cells.
Under ``load_data_on_device="auto"`` each process decides from its own free memory; one that
loads per minibatch draws from scvi-tools' sampler instead, with as many minibatches per epoch,
so the processes stay in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scvi
import torch
from torch.utils.data import DistributedSampler

if TYPE_CHECKING:
    from collections.abc import Iterator

    from torch.utils.data import Sampler


def distributed_replicas() -> dict[str, int] | None:
    """``num_replicas``, ``rank`` and a shared ``seed`` of a running DDP job, else ``None``."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    return {
        "num_replicas": torch.distributed.get_world_size(),
        "rank": torch.distributed.get_rank(),
        "seed": int(scvi.settings.seed or 0),
    }


def shard_positions(n: int, num_replicas: int, rank: int, seed: int) -> np.ndarray:
    """The fixed shard of ``range(n)`` of process ``rank`` (sorted).

    Every ``num_replicas``-th position of one seeded permutation (the same on every process),
    padded by wrapping around to a multiple of ``num_replicas``: the shards have equal sizes,
    are disjoint but for the padding, and cover ``range(n)``.
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.random.RandomState(seed).permutation(n)
    order = np.resize(order, -(-n // num_replicas) * num_replicas)  # wraps around
    return np.sort(order[rank::num_replicas]).astype(np.int64)


def stream_seed(seed: int, rank: int, epoch: int) -> int:
    """Seed of one process's shuffle in one epoch (independent across processes and epochs)."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])


class ShardBatchSampler:
    """Minibatches of one process's fixed shard, reshuffled within it every epoch.

    Parameters
    ----------
    n
        Positions to shard (``range(n)``: the loader's cells).
    batch_size
        Minibatch size.
    drop_last
        Drop the last minibatch when it is smaller than ``batch_size``.
    num_replicas, rank, seed
        The DDP job (:func:`distributed_replicas`).
    """

    def __init__(
        self, n: int, batch_size: int, drop_last: bool, num_replicas: int, rank: int, seed: int
    ):
        self.positions = shard_positions(n, num_replicas, rank, seed)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.rank, self.seed, self.epoch = rank, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Epoch of the shuffle (Lightning calls this at every epoch under DDP)."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.positions)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[np.ndarray]:
        generator = torch.Generator().manual_seed(stream_seed(self.seed, self.rank, self.epoch))
        order = self.positions[torch.randperm(len(self.positions), generator=generator).numpy()]
        for i in range(len(self)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size]


def sharded_sampler(sampler: Sampler, replicas: dict[str, int]) -> Sampler:
    """The sampler to draw with when each process holds only its shard of the data.

    A shuffling distributed sampler (scvi-tools' training sampler) becomes a
    :class:`ShardBatchSampler`; a sampler with a ``sharded()`` method (the labelled-minibatch
    sampler) its sharded form; any other (validation: a fixed order per process) is kept.
    """
    if callable(getattr(sampler, "sharded", None)):
        return sampler.sharded()
    if isinstance(sampler, DistributedSampler) and sampler.shuffle:
        return ShardBatchSampler(
            len(sampler.dataset),
            sampler.batch_size,
            getattr(sampler, "drop_last_batch", False),
            **replicas,
        )
    return sampler


def sampler_positions(sampler: Sampler) -> np.ndarray:
    """Every position ``sampler`` can draw: a shard's, or those of one pass of a fixed order."""
    positions = getattr(sampler, "positions", None)
    if positions is not None:
        return np.asarray(positions, dtype=np.int64)
    batches = [np.asarray(batch, dtype=np.int64).reshape(-1) for batch in sampler]
    return np.unique(np.concatenate(batches)) if batches else np.zeros(0, dtype=np.int64)
