"""On-the-fly encoder input transforms: raw counts stay the decoders' targets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from mosaicvi._choices import check_choice
from mosaicvi.nn._sparse import (
    is_sparse,
    row_ids,
    row_nnz,
    row_sums,
    sparse_matmul,
    to_dense,
    with_values,
)


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


class TfIdfLsi(nn.Module):
    """Latent semantic indexing: binarised TF-IDF (as :class:`TfIdf`) projected on fitted loadings.

    ``u = TfIdf(x) @ loadings``, then each cell's components are standardised (mean 0, SD 1
    across components), as Signac and GLUE do. ``loadings`` ``(n_features, n_components)`` are
    the right singular vectors divided by their singular values, fitted on the training cells
    (:func:`mosaicvi.model.fit_lsi`), so the encoder sees a dense, low-dimensional input that
    pools every open peak of a cell, which a cell with a few dozen open peaks needs.
    """

    def __init__(self, idf: torch.Tensor, loadings: torch.Tensor, scale: float = 1e4):
        super().__init__()
        self.tfidf = TfIdf(idf, scale=scale)
        self.register_buffer("loadings", loadings.float())

    @property
    def n_output(self) -> int:
        """Number of LSI components the transform returns."""
        return self.loadings.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project dense or CSR counts ``(n_cells, n_features)`` to ``(n_cells, n_components)``."""
        tfidf = self.tfidf(x)
        u = sparse_matmul(tfidf, self.loadings) if is_sparse(tfidf) else tfidf @ self.loadings
        u = u - u.mean(-1, keepdim=True)
        return u / u.std(-1, keepdim=True).clamp(min=1e-6)


class TfIdfWithLsi(TfIdfLsi):
    """Both views of ATAC: the binarised TF-IDF of every peak and its LSI components.

    Returns ``(tfidf, lsi)`` (CSR input stays CSR in the first): the encoder applies one linear
    layer to each and adds them, so it keeps every peak's detail (which paired cells can teach)
    and the pooled, denoised LSI coordinates (which carry cells with few open peaks).
    """

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(TF-IDF, standardised LSI components)`` of dense or CSR counts."""
        return self.tfidf(x), super().forward(x)


class CenteredLogRatio(nn.Module):
    """Centred log-ratio ``log1p(x) - mean(log1p(x))`` per cell (ADT); zero rows stay zero."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Transform counts (CSR input is densified: protein panels are small)."""
        logged = torch.log1p(to_dense(x))
        return logged - logged.mean(-1, keepdim=True)


#: The names of :data:`INPUT_TRANSFORMS`, for type hints.
InputTransformName = Literal["log_normalize", "tfidf", "lsi", "tfidf_lsi", "clr"]

#: Input transforms by name (``MosaicVI(input_transforms=...)``): the class and the parameters
#: it needs fitted on the training cells (see :func:`~mosaicvi.model._input_statistics.input_transform_params`).
INPUT_TRANSFORMS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "log_normalize": (LogNormalize, ()),
    "clr": (CenteredLogRatio, ()),
    "tfidf": (TfIdf, ("idf",)),
    "lsi": (TfIdfLsi, ("idf", "loadings")),
    "tfidf_lsi": (TfIdfWithLsi, ("idf", "loadings")),
}


def make_input_transform(name: str, params: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """Build the transform called ``name`` (one of :data:`INPUT_TRANSFORMS`).

    ``"log_normalize"`` and ``"clr"`` take no parameters; ``"tfidf"`` needs ``params["idf"]``
    and ``"lsi"`` / ``"tfidf_lsi"`` ``params["idf"]`` and ``params["loadings"]`` (both fitted on
    training data).
    """
    cls, needed = INPUT_TRANSFORMS[check_choice("input transform", name, INPUT_TRANSFORMS)]
    params = params or {}
    missing = [p for p in needed if p not in params]
    if missing:
        raise ValueError(f"The {name!r} input transform needs the fitted {missing}.")
    return cls(*(params[p] for p in needed))
