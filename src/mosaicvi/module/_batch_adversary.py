"""The latent adversary's options: what its discriminator predicts and how hard it pushes."""

from __future__ import annotations

import torch

from mosaicvi._choices import check_choice
from mosaicvi.nn import BatchDiscriminator

#: What the latent discriminator predicts: the cell's batch, or its modality set (which
#: modalities it measured, one class per non-empty subset of the modalities).
DISCRIMINATOR_TARGETS = ("batch", "modality_set")


def make_latent_discriminator(
    enabled: bool,
    target: str,
    n_latent: int,
    n_batch: int,
    n_modalities: int,
    dropout_rate: float,
) -> BatchDiscriminator | None:
    """The discriminator on ``z``: ``None`` when off or when its target has a single class."""
    check_choice("discriminator_target", target, DISCRIMINATOR_TARGETS)
    n_classes = n_batch if target == "batch" else 2**n_modalities - 1
    if not enabled or n_classes < 2:
        return None
    return BatchDiscriminator(n_latent, n_classes, dropout_rate=dropout_rate)


def discriminator_classes(
    target: str, batch_index: torch.Tensor, present: torch.Tensor
) -> torch.Tensor:
    """Class of each cell: its batch, or its modality set as ``sum_i 2**i [measured i] - 1``."""
    if target == "batch":
        return batch_index.reshape(-1).long()
    bits = 2 ** torch.arange(present.shape[1], device=present.device)
    return (present.long() * bits).sum(1) - 1


def adversary_strength(
    strength: float,
    feature_scale: float | None,
    measured_features: torch.Tensor,
    full_strength_features: int | None = None,
) -> float | torch.Tensor:
    """Reversed-gradient strength: ``strength``, or per cell scaled by its measured features.

    With ``F`` (``measured_features``, ``(n_cells, 1)``) the number of features the cell's
    reconstruction sums over (those of the modalities it measured, less those its batch did not
    measure), the strength is multiplied by ``feature_scale * F`` when ``feature_scale`` is set
    (the push grows with the reconstruction term it competes with; GLUE normalises each
    modality's NLL per feature instead, the same ratio for a single-modality cell) and by
    ``min(1, F / full_strength_features)`` when that is set (cells with few features, e.g. a
    small protein panel, get a proportionally weaker push, which keeps their reconstruction from
    being overpowered; cells with more features are unaffected).
    """
    if feature_scale is None and full_strength_features is None:
        return strength
    scale = torch.ones_like(measured_features)
    if feature_scale is not None:
        scale = scale * feature_scale * measured_features
    if full_strength_features is not None:
        scale = scale * (measured_features / full_strength_features).clamp(max=1.0)
    return strength * scale
