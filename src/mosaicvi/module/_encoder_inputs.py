"""What the encoders of :class:`~mosaicvi.module.MosaicVAE` see: measured features, modalities.

Feature masks.
A modality may hold the union of the panels its batches measured. The module keeps one
``(n_batch, n_features)`` boolean table per masked modality (a buffer, not saved with the weights:
it is rebuilt from the registry) and expands it per minibatch from the cells' batches. The
entries a cell's batch did not measure are removed from its counts before anything reads them
(library, encoder input), and the decoders leave them out of the softmax and the NLL on every
path that fits the model; outputs decode every feature (imputation).

Modality drop-out hides measured modalities of multi-modality cells while training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mosaicvi.nn._sparse import keep_entries

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np


class EncoderInputsMixin:
    """Per-batch feature masks (registration, per-cell lookup, masked inputs), modality drop-out."""

    def register_feature_masks(
        self, feature_masks: Mapping[str, np.ndarray] | None, panel_dropout: float = 0.0
    ) -> None:
        """Keep each masked modality's ``(n_batch, n_features)`` table as a buffer.

        Tables with every feature measured by every batch are not kept (nothing to mask).
        ``panel_dropout``: probability, while training, that a cell's encoder sees only the
        features of the modality that every batch measured (the panels' intersection), so that
        the encoders learn one representation of the shared features for all panels (as
        modality drop-out does for modalities); the likelihood still scores every measured one.
        """
        if not 0.0 <= panel_dropout < 1.0:
            raise ValueError(f"`panel_dropout` must be in [0, 1), got {panel_dropout}.")
        self.panel_dropout = float(panel_dropout)
        self.masked_modalities: dict[str, str] = {}
        for i, (m, table) in enumerate((feature_masks or {}).items()):
            table = torch.as_tensor(table, dtype=torch.bool)
            if bool(table.all()):
                continue
            name = f"_feature_mask_{i}"
            self.register_buffer(name, table, persistent=False)
            self.register_buffer(f"{name}_shared", table.all(0), persistent=False)
            self.masked_modalities[m] = name

    def feature_mask(self, modality: str, batch_index: torch.Tensor) -> torch.Tensor | None:
        """``(n_cells, n_features)`` mask of the cells of ``batch_index`` (``None``: all measured)."""
        name = self.masked_modalities.get(modality)
        if name is None or batch_index is None:
            return None
        return getattr(self, name)[batch_index.reshape(-1).long()]

    def measured_feature_counts(
        self, present: torch.Tensor, batch_index: torch.Tensor
    ) -> torch.Tensor:
        """``(n_cells, 1)``: the features each cell measured (its modalities, less masked ones)."""
        counts = []
        for i, (m, (start, stop)) in enumerate(self.feature_slices.items()):
            name = self.masked_modalities.get(m)
            if name is None:
                n = torch.full_like(present[:, i], stop - start, dtype=torch.float32)
            else:
                n = getattr(self, name).sum(1, dtype=torch.float32)[batch_index.reshape(-1).long()]
            counts.append(present[:, i].float() * n)
        return torch.stack(counts, dim=1).sum(1, keepdim=True)

    def measured_inputs(
        self, x: Mapping[str, torch.Tensor], batch_index: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor | None]]:
        """Counts without the unmeasured entries; what the encoders see of them, and its mask.

        The encoders' view differs from the counts only while training with ``panel_dropout``.
        """
        masks = {m: self.feature_mask(m, batch_index) for m in x}
        kept = {m: x[m] if masks[m] is None else keep_entries(x[m], masks[m]) for m in x}
        if not self.training or self.panel_dropout == 0.0:
            return kept, kept, masks
        seen, seen_masks = dict(kept), dict(masks)
        for m, mask in masks.items():
            shared = None if mask is None else getattr(self, f"{self.masked_modalities[m]}_shared")
            if shared is None or not bool(shared.any()):
                continue
            hidden = torch.rand(mask.shape[0], 1, device=mask.device) < self.panel_dropout
            seen_masks[m] = torch.where(hidden, mask & shared, mask)
            seen[m] = keep_entries(kept[m], seen_masks[m])
        return kept, seen, seen_masks

    def encoder_presence(self, present: torch.Tensor) -> torch.Tensor:
        """Modalities the encoders see: ``present``, minus random drop-outs while training."""
        if not self.training or self.modality_dropout == 0.0:
            return present
        dropped = torch.rand(present.shape, device=present.device) < self.modality_dropout
        kept = present & ~dropped
        nothing_left = ~kept.any(dim=1, keepdim=True)
        return torch.where(nothing_left, present, kept)

    def library_size(
        self, modality: str, x: torch.Tensor, batch_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-cell library of ``modality`` (total counts, or open features for Bernoulli).

        With ``batch_index``, over the features each cell's batch measured (feature masks).
        """
        mask = self.feature_mask(modality, batch_index)
        return self.likelihoods[modality].library_size(
            x if mask is None else keep_entries(x, mask)
        )
