"""Data splitter that keeps sparse minibatches sparse on the device."""

from __future__ import annotations

from scvi.dataloaders import DataSplitter


class SparseDataSplitter(DataSplitter):
    """:class:`scvi.dataloaders.DataSplitter` that does not densify CSR minibatches.

    With ``load_sparse_tensor=True`` scvi-tools ships CSR tensors to the device and then densifies
    them; :class:`~mosaicvi.module.MosaicVAE` consumes CSR directly (sparse first encoder layer,
    sparse Bernoulli likelihood), so the dense copy is skipped.
    """

    def on_after_batch_transfer(self, batch, dataloader_idx):
        """Return the batch unchanged."""
        return batch
