"""Helpers that let a minibatch stay a sparse CSR tensor from the data loader to the loss.

ATAC count matrices are >99% zeros; densifying a minibatch of 25k peaks costs more than the
model. Every function here accepts a dense tensor or a ``torch.sparse_csr`` tensor.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

# mosaicvi builds CSR minibatches on purpose; torch's notices about it would print on every run.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def is_sparse(x: torch.Tensor) -> bool:
    """Whether ``x`` is a sparse CSR tensor."""
    return x.layout == torch.sparse_csr


def row_ids(x: torch.Tensor) -> torch.Tensor:
    """Row index of every stored value of a CSR tensor."""
    crow = x.crow_indices()
    counts = crow[1:] - crow[:-1]
    # ``output_size`` (the stored values, known without reading the device) spares a host sync.
    return torch.repeat_interleave(
        torch.arange(x.shape[0], device=x.device), counts, output_size=x.col_indices().shape[0]
    )


def with_values(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """CSR tensor with the sparsity pattern of ``x`` and new ``values``."""
    return torch.sparse_csr_tensor(
        x.crow_indices(), x.col_indices(), values, size=x.shape, device=x.device
    )


def row_sums(x: torch.Tensor) -> torch.Tensor:
    """Sum of each row, for dense or CSR ``x``."""
    if not is_sparse(x):
        return x.sum(-1)
    out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    return out.index_add_(0, row_ids(x), x.values())


def row_nnz(x: torch.Tensor) -> torch.Tensor:
    """Number of non-zero entries of each row, for dense or CSR ``x``."""
    if not is_sparse(x):
        return (x > 0).sum(-1).to(x.dtype)
    crow = x.crow_indices()
    return (crow[1:] - crow[:-1]).to(x.values().dtype)


def to_dense(x: torch.Tensor) -> torch.Tensor:
    """Dense copy of a CSR tensor (``x`` itself if already dense)."""
    return x.to_dense() if is_sparse(x) else x


def select_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` (sorted) of ``x``, in the layout of ``x``.

    For a CSR ``x`` every row *not* selected must be empty, which holds for the zero rows that
    stand in for a missing modality: the selection then only rewrites the row pointers.
    """
    if not is_sparse(x):
        return x[rows]
    crow = x.crow_indices()
    counts = (crow[1:] - crow[:-1])[rows]
    new_crow = torch.cat([crow.new_zeros(1), torch.cumsum(counts, 0)])
    return torch.sparse_csr_tensor(
        new_crow, x.col_indices(), x.values(), size=(len(rows), x.shape[1]), device=x.device
    )


def sparse_matmul(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``x @ weight`` for CSR ``x``, as an embedding bag over each row's non-zero columns."""
    return F.embedding_bag(
        x.col_indices(),
        weight,
        x.crow_indices()[:-1],
        mode="sum",
        per_sample_weights=x.values(),
    )


class SparseInputLinear(nn.Module):
    """``x @ W + b`` that costs O(non-zeros) when ``x`` is a sparse CSR tensor.

    The weight is stored features x outputs so that a sparse row is an embedding bag over its
    non-zero columns, weighted by their values.
    """

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        self.weight = nn.Parameter(torch.empty(n_in, n_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layer to dense or CSR ``x`` of shape ``(n_cells, n_in)``."""
        if not is_sparse(x):
            return x @ self.weight + self.bias
        return sparse_matmul(x, self.weight) + self.bias


def gather_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Rows ``rows`` of ``x`` in that order (repeats allowed), in the layout of ``x``.

    Unlike :func:`select_rows`, the rows left out may hold values (e.g. a subset of the cells
    that measured a modality, or the same cell once per mixture component).
    """
    if not is_sparse(x):
        return x[rows]
    crow = x.crow_indices()
    starts = crow[rows]
    counts = crow[rows + 1] - starts
    new_crow = torch.cat([crow.new_zeros(1), torch.cumsum(counts, 0)])
    total = int(new_crow[-1])
    offsets = torch.arange(total, device=x.device) - torch.repeat_interleave(new_crow[:-1], counts)
    index = torch.repeat_interleave(starts, counts) + offsets
    return torch.sparse_csr_tensor(
        new_crow,
        x.col_indices()[index],
        x.values()[index],
        size=(len(rows), x.shape[1]),
        device=x.device,
    )


def keep_entries(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with the entries where the boolean ``mask`` (same shape) is ``False`` removed.

    Dense ``x``: those entries become zeros. CSR ``x``: they are dropped from the sparsity
    pattern (not stored as explicit zeros, which :func:`row_nnz` would count).
    """
    if not is_sparse(x):
        return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))
    rows, cols = row_ids(x), x.col_indices()
    keep = mask[rows, cols]
    counts = torch.bincount(rows[keep], minlength=x.shape[0])
    crow = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)]).to(x.crow_indices().dtype)
    return torch.sparse_csr_tensor(
        crow, cols[keep], x.values()[keep], size=x.shape, device=x.device
    )


def scale_rows(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Each row of dense or CSR ``x`` multiplied by ``scale`` ``(n_rows,)``."""
    scale = scale.to(x.dtype)
    if not is_sparse(x):
        return x * scale[:, None]
    return with_values(x, x.values() * scale[row_ids(x)])
