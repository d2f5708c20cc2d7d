"""Data splitter that keeps sparse minibatches sparse, optionally gathered on the device."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scvi.dataloaders import DataSplitter

from mosaicvi.train._device_data import (
    DeviceResidentData,
    DeviceResidentLoader,
    resolve_load_on_device,
)
from mosaicvi.train._sharding import distributed_replicas, sampler_positions, sharded_sampler

if TYPE_CHECKING:
    from scvi.data import AnnDataManager


class SparseDataSplitter(DataSplitter):
    """:class:`scvi.dataloaders.DataSplitter` that does not densify CSR minibatches.

    With ``load_sparse_tensor=True`` scvi-tools ships CSR tensors to the device and then densifies
    them; :class:`~mosaicvi.module.MosaicVAE` consumes CSR directly (sparse first encoder layer,
    sparse Bernoulli likelihood), so the dense copy is skipped.

    Parameters
    ----------
    adata_manager
        The model's data manager.
    load_data_on_device
        Keep every registered field on the training device and gather minibatches there
        (:class:`~mosaicvi.train._device_data.DeviceResidentLoader`: the same minibatches as the
        reference loader, no per-step host work or copy). ``"auto"``: on a CUDA device when the
        data fit in a share of its free memory, never on the CPU. ``False``: scvi-tools'
        loader, which slices each minibatch on the host. Under DDP each process holds only its
        shard of the cells (:mod:`~mosaicvi.train._sharding`: fixed shards, reshuffled within).
    **kwargs
        Passed to :class:`scvi.dataloaders.DataSplitter`.
    """

    def __init__(
        self, adata_manager: AnnDataManager, load_data_on_device: bool | str = False, **kwargs
    ):
        super().__init__(adata_manager, **kwargs)
        if not (isinstance(load_data_on_device, bool) or load_data_on_device == "auto"):
            raise ValueError(
                "`load_data_on_device` must be True, False or 'auto', got "
                f"{load_data_on_device!r}."
            )
        self.load_data_on_device = load_data_on_device
        self.resident: DeviceResidentData | None = None

    @property
    def device(self) -> torch.device:
        """The device of the training run (the CPU outside a Lightning fit)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return torch.device("cpu")
        return trainer.strategy.root_device

    def setup(self, stage: str | None = None):
        """Split the cells; move the data (this process's shard) to the device when resident."""
        super().setup(stage)
        self.adjust_split()
        device = self.device
        if self.resident is not None and self.resident.device == device:
            return
        self.resident = None
        if self.load_data_on_device is False:
            return
        rows = self._shard_rows()
        if resolve_load_on_device(self.load_data_on_device, self.adata_manager, device, rows):
            self.resident = DeviceResidentData(self.adata_manager, device, rows)

    def adjust_split(self) -> None:
        """Change scvi-tools' split of the cells (``train_idx``, ``val_idx``); here: none."""

    def _replicas(self) -> dict[str, int] | None:
        """The DDP job when minibatches are sharded across processes, else ``None``."""
        if not self.data_loader_kwargs.get("distributed_sampler", False):
            return None
        return distributed_replicas()

    def _shard_rows(self) -> np.ndarray | None:
        """Cells this process's training and validation minibatches draw (``None``: all)."""
        replicas = self._replicas()
        if replicas is None:
            return None
        loaders = [self.train_dataloader(), self.val_dataloader()]  # the reference loaders
        rows = [
            np.asarray(loader.indices)[
                sampler_positions(sharded_sampler(loader.sampler, replicas))
            ]
            for loader in loaders
            if loader is not None
        ]
        return np.unique(np.concatenate(rows))

    def _resident(self, loader):
        """``loader``'s minibatches gathered from the resident data (``loader`` if none)."""
        if self.resident is None:
            return loader
        replicas = self._replicas()
        sampler = None if replicas is None else sharded_sampler(loader.sampler, replicas)
        return DeviceResidentLoader(self.resident, loader, sampler)

    def train_dataloader(self):
        """Training minibatches (gathered on the device when the data are resident there)."""
        return self._resident(super().train_dataloader())

    def val_dataloader(self):
        """Validation minibatches (gathered on the device when the data are resident there)."""
        loader = super().val_dataloader()
        return loader if loader is None else self._resident(loader)

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Return the batch unchanged."""
        return batch
