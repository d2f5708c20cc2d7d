"""Per-cell decoding libraries: observed where a cell measured the modality, else predicted.

``get_normalized_expression(library_size="cell")`` decodes each cell at the library it has (or
would have had) in the decoded modality, instead of one typical library for every cell. A cell
that measured the modality gets its own library (total counts; open features for ATAC). For a
cell that did not, the library is predicted from the libraries of the modalities it measured:
for each such modality ``k``, a least-squares line ``log l_m = a_k + b_k log l_k`` fitted on the
training cells that measured both (e.g. the paired cells of a mosaic), averaged over the cell's
modalities on the log scale. Sequencing depth is shared across a cell's assays (SNARE-seq:
correlation 0.5 of the log libraries), so the predicted library carries part of the depth of the
hidden profile; where no training cell measured both modalities the typical (median) library is
used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from mosaicvi._constants import PRESENCE_KEY, modality_registry_key

if TYPE_CHECKING:
    from scvi.data import AnnDataManager

#: Training cells measuring both modalities needed to fit a line (fewer: no prediction from it).
MIN_CELLS_FOR_FIT = 20


@dataclass(frozen=True)
class CellLibraries:
    """How to get each cell's library of ``modality`` (see the module docstring).

    ``lines[k] = (a_k, b_k)`` for each other modality ``k`` (by its column in the presence
    mask) with enough cells measuring both; ``log_reference`` is the typical library's log.
    """

    modality: str
    column: int
    lines: dict[int, tuple[float, float]]
    log_reference: float

    def per_cell(
        self, module, tensors: dict[str, torch.Tensor], modalities: list[str]
    ) -> torch.Tensor:
        """The library ``(n,)`` of each cell of a minibatch (float32, at least 1)."""
        presence = tensors[PRESENCE_KEY] > 0
        observed = log_library(module, tensors, self.modality)
        total = torch.zeros_like(observed)
        count = torch.zeros_like(observed)
        for k, (intercept, slope) in self.lines.items():
            has = presence[:, k].to(observed.device)
            log_k = log_library(module, tensors, modalities[k])
            total += torch.where(has, intercept + slope * log_k, torch.zeros_like(log_k))
            count += has.to(observed.dtype)
        predicted = torch.where(
            count > 0, total / count.clamp(min=1.0), torch.full_like(total, self.log_reference)
        )
        own = presence[:, self.column].to(observed.device)
        return torch.exp(torch.where(own, observed, predicted))


def log_library(module, tensors: dict[str, torch.Tensor], modality: str) -> torch.Tensor:
    """``log`` of each cell's library of ``modality`` in a minibatch (0 for an empty row)."""
    x = tensors[modality_registry_key(modality)]
    library = module.likelihoods[modality].library_size(x).reshape(-1).float()
    return torch.log(library.clamp(min=1.0))


def fit_cell_libraries(
    manager: AnnDataManager, module, modality: str, modalities: list[str]
) -> CellLibraries:
    """Lines predicting the library of ``modality`` from each other modality's (training data)."""
    presence = np.asarray(manager.get_from_registry(PRESENCE_KEY)) > 0
    column = modalities.index(modality)
    logs = {
        m: np.log(
            np.maximum(
                module.likelihoods[m].cell_library(
                    manager.get_from_registry(modality_registry_key(m))
                ),
                1.0,
            )
        )
        for m in modalities
    }
    lines = {}
    for k, other in enumerate(modalities):
        both = presence[:, column] & presence[:, k]
        if k == column or both.sum() < MIN_CELLS_FOR_FIT or np.ptp(logs[other][both]) == 0:
            continue
        slope, intercept = np.polyfit(logs[other][both], logs[modality][both], 1)
        lines[k] = (float(intercept), float(slope))
    log_reference = float(module.decoders[modality].log_library_reference)
    return CellLibraries(modality, column, lines, log_reference)
