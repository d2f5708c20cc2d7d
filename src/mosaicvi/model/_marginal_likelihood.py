"""Importance-sampled marginal log-likelihood per cell (:meth:`MosaicVI.get_marginal_ll`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Iterable


def check_n_mc_samples(n_mc_samples: int) -> None:
    """Refuse anything but an integer >= 1."""
    if isinstance(n_mc_samples, bool) or not isinstance(n_mc_samples, int) or n_mc_samples < 1:
        raise ValueError(f"`n_mc_samples` must be an integer >= 1, got {n_mc_samples!r}.")


@torch.inference_mode()
def marginal_ll(
    module,
    loader: Iterable[dict[str, torch.Tensor]],
    n_mc_samples: int,
    n_mc_samples_per_pass: int | None = None,
) -> np.ndarray:
    """``log p(x)`` estimates of the cells of ``loader``, in its order.

    Parameters
    ----------
    module
        A :class:`~mosaicvi.module.MosaicVAE`; evaluated in evaluation mode (no dropout, no
        modality drop-out), its mode restored afterwards.
    loader
        Minibatches of the cells.
    n_mc_samples
        Importance samples per posterior component.
    n_mc_samples_per_pass
        Samples decoded at once (``None``: the module's default).
    """
    check_n_mc_samples(n_mc_samples)
    was_training = module.training
    module.eval()
    try:
        values = [
            module.marginal_ll(
                tensors, n_mc_samples=n_mc_samples, n_mc_samples_per_pass=n_mc_samples_per_pass
            ).cpu()
            for tensors in loader
        ]
    finally:
        module.train(was_training)
    return torch.cat(values).numpy()
