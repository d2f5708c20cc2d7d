"""On-the-fly encoder input transforms: raw counts stay the decoders' targets."""

from __future__ import annotations

import torch
from torch import nn

from mosaicvi.nn._sparse import is_sparse, row_ids, row_nnz, row_sums, to_dense, with_values


class LogNormalize(nn.Module):
    """``log1p(x / library * scale)``: library-size normalisation then log (RNA, generic counts)."""

    def __init__(self, scale: float = 1e4):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform dense or CSR counts, keeping the layout."""
        factor = self.scale / row_sums(x).clamp(min=1.0)
        if is_sparse(x):
            return with_values(x, torch.log1p(x.values() * factor[row_ids(x)]))
        return torch.log1p(x * factor[:, None])


class TfIdf(nn.Module):
    """Binarised TF-IDF followed by ``log1p`` (ATAC); ``idf`` is estimated from the training data."""

    def __init__(self, idf: torch.Tensor, scale: float = 1e4):
        super().__init__()
        self.scale = scale
        self.register_buffer("idf", idf.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform dense or CSR counts, keeping the layout."""
        tf = self.scale / row_nnz(x).clamp(min=1.0)
        if is_sparse(x):
            values = tf[row_ids(x)] * self.idf[x.col_indices()]
            return with_values(x, torch.log1p(values))
        return torch.log1p((x > 0).to(x.dtype) * tf[:, None] * self.idf)


class CenteredLogRatio(nn.Module):
    """Centred log-ratio ``log1p(x) - mean(log1p(x))`` per cell (ADT); zero rows stay zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform counts (CSR input is densified: protein panels are small)."""
        logged = torch.log1p(to_dense(x))
        return logged - logged.mean(-1, keepdim=True)


def make_input_transform(name: str, idf: torch.Tensor | None = None) -> nn.Module:
    """Build the transform called ``name`` (``log_normalize``, ``tfidf`` or ``clr``)."""
    if name == "log_normalize":
        return LogNormalize()
    if name == "tfidf":
        if idf is None:
            raise ValueError("The 'tfidf' input transform needs the per-feature `idf`.")
        return TfIdf(idf)
    if name == "clr":
        return CenteredLogRatio()
    raise ValueError(f"Unknown input transform {name!r}; use 'log_normalize', 'tfidf' or 'clr'.")
