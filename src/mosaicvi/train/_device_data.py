"""Device-resident training data: every registered field on the device once, rows gathered there.

The reference data path (scvi-tools' ``AnnDataLoader``) slices each minibatch out of the
registered scipy CSR matrices on the host, wraps it in torch tensors and copies it to the
device, every step. :class:`DeviceResidentData` instead moves each field to the device once
(CSR matrices as their three arrays; presence mask, batch and label codes, covariates as
dense arrays), and :class:`DeviceResidentLoader` gathers the rows of each minibatch there.

Minibatches are the reference loader's own: the resident loader wraps that loader and draws
from its sampler (the same shuffle, train/validation split and labelled-minibatch sampler,
from the same random stream), once per epoch on the host; the whole epoch's row indices then
go to the device in one copy, together with each minibatch's count of stored values per
sparse field, so that a step slices and gathers on the device without reading anything back.
Under DDP each process holds only its shard of the cells and draws from it
(:mod:`mosaicvi.train._sharding`, which says how this differs from the reference loader).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from scvi import REGISTRY_KEYS

if TYPE_CHECKING:
    from collections.abc import Iterator

    from scvi.data import AnnDataManager
    from torch.utils.data import DataLoader

logger = logging.getLogger(__name__)

#: Registered fields loaded as integer codes (as scvi-tools' data loaders do); others as float32.
_INTEGER_KEYS = (
    REGISTRY_KEYS.BATCH_KEY,
    REGISTRY_KEYS.LABELS_KEY,
    REGISTRY_KEYS.CAT_COVS_KEY,
    REGISTRY_KEYS.INDICES_KEY,
)

#: Share of the free device memory the resident data may take under ``"auto"`` (the rest is
#: left to the model's weights, activations and optimiser state).
FREE_MEMORY_SHARE = 0.5


def _host_fields(manager: AnnDataManager, rows: np.ndarray | None = None) -> dict[str, Any]:
    """Each registered field (its ``rows``; all by default) as CSR or numpy, loader dtypes."""
    fields = {}
    for key in manager.data_registry:
        data = manager.get_from_registry(key)
        if isinstance(data, str):  # a minified data set's type, not data
            continue
        dtype = np.int64 if key in _INTEGER_KEYS else np.float32
        if sp.issparse(data):
            data = sp.csr_matrix(data, dtype=np.float32)
            fields[key] = data if rows is None else data[rows]
            continue
        data = data.to_numpy() if isinstance(data, pd.DataFrame) else np.asarray(data)
        fields[key] = (data if rows is None else data[rows]).astype(dtype, copy=False)
    return fields


def resident_nbytes(manager: AnnDataManager, rows: np.ndarray | None = None) -> int:
    """Bytes the registered fields (their ``rows``) take on the device (CSR: 3 arrays)."""
    total = 0
    for key in manager.data_registry:
        data = manager.get_from_registry(key)
        if isinstance(data, str):
            continue
        n_rows = np.shape(data)[0] if rows is None else len(rows)
        if sp.issparse(data):
            data = sp.csr_matrix(data)
            nnz = data.nnz if rows is None else int(np.diff(data.indptr)[rows].sum())
            index_bytes = 4 if nnz < 2**31 else 8
            total += nnz * (4 + index_bytes) + (n_rows + 1) * 8
        else:
            total += n_rows * int(np.prod(np.shape(data)[1:])) * 8
    return total


def resolve_load_on_device(
    setting: bool | str,
    manager: AnnDataManager,
    device: torch.device,
    rows: np.ndarray | None = None,
) -> bool:
    """Whether to keep the training data on ``device`` for ``load_data_on_device=setting``.

    ``"auto"``: on a CUDA device, when the data (``rows``: this process's shard; default all)
    take at most :data:`FREE_MEMORY_SHARE` of its free memory; never on the CPU (where the
    reference loader is as fast, see the benchmark notes) nor on other accelerators (their free
    memory is not known).
    """
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ValueError(f"`load_data_on_device` must be True, False or 'auto', got {setting!r}.")
    if device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(device)
    needed = resident_nbytes(manager, rows)
    fits = needed <= FREE_MEMORY_SHARE * free
    logger.info(
        "Training data: %.0f MB, %.0f MB free on %s: %s.",
        needed / 2**20,
        free / 2**20,
        device,
        "kept on the device" if fits else "loaded per minibatch",
    )
    return fits


class DeviceResidentData:
    """The registered fields of a data manager on one device, gathered by row.

    Parameters
    ----------
    manager
        The model's data manager (every registered field is moved).
    device
        The training device. On the CPU the arrays are shared with the registered data
        (no copy) wherever their dtypes already match.
    rows
        The cells to hold (a DDP process's shard); ``None``: all. Minibatches name cells by
        their index in the data (:meth:`local_rows` maps them to the rows held).
    """

    def __init__(
        self,
        manager: AnnDataManager,
        device: torch.device | str,
        rows: np.ndarray | None = None,
    ):
        self.device = torch.device(device)
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        self._local: np.ndarray | None = None
        #: Number of cells held.
        self.n_rows = manager.adata.n_obs if self.rows is None else len(self.rows)
        if self.rows is not None:
            self._local = np.full(manager.adata.n_obs, -1, dtype=np.int64)
            self._local[self.rows] = np.arange(len(self.rows))
        self.dense: dict[str, torch.Tensor] = {}
        self.sparse: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]] = {}
        #: Stored values per row of each CSR field (host), to size each minibatch's gather.
        self.row_nnz: dict[str, np.ndarray] = {}
        for key, data in _host_fields(manager, self.rows).items():
            if sp.issparse(data):
                index_dtype = np.int32 if data.nnz < 2**31 else np.int64
                indptr = torch.from_numpy(data.indptr.astype(np.int64, copy=False))
                indices = torch.from_numpy(data.indices.astype(index_dtype, copy=False))
                values = torch.from_numpy(data.data)
                self.sparse[key] = (
                    indptr.to(self.device),
                    indices.to(self.device),
                    values.to(self.device),
                    data.shape[1],
                )
                self.row_nnz[key] = np.diff(data.indptr).astype(np.int64)
            else:
                self.dense[key] = torch.from_numpy(np.ascontiguousarray(data)).to(self.device)

    def local_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows held for the cells ``rows`` (indices in the data); an error for cells not held."""
        if self._local is None:
            return rows
        local = self._local[rows]
        if (local < 0).any():
            raise RuntimeError(
                "A minibatch draws cells this process does not hold on its device (its shard)."
            )
        return local

    def minibatch_nnz(self, rows: np.ndarray, starts: np.ndarray) -> dict[str, np.ndarray]:
        """Stored values of each CSR field in each minibatch of ``rows`` (split at ``starts``)."""
        return {
            key: np.add.reduceat(nnz[rows], starts) if len(rows) else np.zeros(0, np.int64)
            for key, nnz in self.row_nnz.items()
        }

    def gather(self, rows: torch.Tensor, nnz: dict[str, int]) -> dict[str, torch.Tensor]:
        """Minibatch of ``rows`` (on the device), laid out as the reference loader's.

        ``nnz`` gives each CSR field's count of stored values in these rows, so that the
        gather needs no read-back from the device.
        """
        batch = {key: values[rows] for key, values in self.dense.items()}
        n_rows = rows.shape[0]
        for key, (indptr, indices, values, n_cols) in self.sparse.items():
            total = int(nnz[key])
            starts = indptr[rows]
            counts = indptr[rows + 1] - starts
            crow = torch.zeros(n_rows + 1, dtype=torch.int64, device=self.device)
            torch.cumsum(counts, 0, out=crow[1:])
            row_of = torch.repeat_interleave(
                torch.arange(n_rows, device=self.device), counts, output_size=total
            )
            source = starts[row_of] + torch.arange(total, device=self.device) - crow[row_of]
            batch[key] = torch.sparse_csr_tensor(
                crow.to(indices.dtype),
                indices[source],
                values[source],
                size=(n_rows, n_cols),
                device=self.device,
            )
        return batch


class DeviceResidentLoader:
    """Minibatches of a reference data loader, gathered from :class:`DeviceResidentData`.

    Parameters
    ----------
    data
        The resident fields.
    reference
        The loader whose minibatches to reproduce (an ``AnnDataLoader``: its ``indices`` and its
        batch ``sampler``, which yields positions into ``indices``). Its sampler is drawn once
        per epoch; its data are never read.
    sampler
        Draw from this sampler (positions into the reference's ``indices``) instead of the
        reference's: a DDP process's shard (:func:`~mosaicvi.train._sharding.sharded_sampler`).
    """

    def __init__(self, data: DeviceResidentData, reference: DataLoader, sampler=None):
        self.data = data
        self.indices = np.asarray(reference.indices, dtype=np.int64)
        #: Lightning calls ``set_epoch`` on it under DDP (the shuffle of each epoch).
        self.sampler = reference.sampler if sampler is None else sampler
        self.batch_sampler = getattr(reference, "batch_sampler", None)
        self.generator = reference.generator

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        # A torch DataLoader draws its workers' base seed from the global random stream before
        # its sampler draws; drawing it too keeps every later draw (the next epochs' shuffles,
        # dropout) the same as with the reference loader.
        torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        batches = [np.asarray(batch, dtype=np.int64).reshape(-1) for batch in self.sampler]
        if not batches:
            return
        sizes = np.array([len(batch) for batch in batches])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = self.data.local_rows(self.indices[np.concatenate(batches)])
        nnz = self.data.minibatch_nnz(rows, starts)
        on_device = torch.from_numpy(rows).to(self.data.device, non_blocking=True)
        for i, (start, size) in enumerate(zip(starts.tolist(), sizes.tolist(), strict=True)):
            yield self.data.gather(
                on_device[start : start + size], {key: n[i] for key, n in nnz.items()}
            )
