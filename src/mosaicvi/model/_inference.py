"""Inference over a data loader, and the per-cell outputs read off it (latent, attention, classes).

:func:`iterate_inference` is the one loop over minibatches that every per-cell output of
:class:`~mosaicvi.MosaicVI` runs: the module's inference on each minibatch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from mosaicvi._constants import MODULE_KEYS, PRESENCE_KEY
from mosaicvi.model._checks import encoding_mask, selected_obs_names

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from anndata import AnnData
    from mudata import MuData

    from mosaicvi import MosaicVI


def masked_presence(loader, keep: torch.Tensor) -> Iterator[dict[str, torch.Tensor]]:
    """Minibatches of ``loader`` with the presence mask limited to the ``keep`` modalities."""
    for tensors in loader:
        presence = tensors[PRESENCE_KEY]
        tensors[PRESENCE_KEY] = presence * keep.to(device=presence.device, dtype=presence.dtype)
        yield tensors


def iterate_inference(
    module, loader: Iterable[dict[str, torch.Tensor]], **inference_kwargs
) -> Iterator[tuple[dict[str, torch.Tensor], dict]]:
    """``(tensors, inference outputs)`` of every minibatch of ``loader``.

    Parameters
    ----------
    module
        A :class:`~mosaicvi.module.MosaicVAE`.
    loader
        Minibatches (dicts of tensors), e.g. from the model's ``_make_data_loader``.
    **inference_kwargs
        Passed to ``module.inference`` (e.g. ``n_samples``).
    """
    for tensors in loader:
        yield tensors, module.inference(**module._get_inference_input(tensors), **inference_kwargs)


@torch.inference_mode()
def latent_representation(
    module, loader, give_mean: bool = True, return_dist: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Posterior means (or samples) of ``z``, or with ``return_dist`` its means and variances.

    The same values as scvi-tools' ``VAEMixin.get_latent_representation`` on ``loader``.
    """
    zs, means, variances = [], [], []
    for _, outputs in iterate_inference(module, loader):
        qz = outputs[MODULE_KEYS.QZ_KEY]
        if return_dist:
            means.append(qz.loc.cpu())
            variances.append(qz.scale.square().cpu())
        else:
            zs.append((qz.loc if give_mean else outputs[MODULE_KEYS.Z_KEY]).cpu())
    if return_dist:
        return torch.cat(means).numpy(), torch.cat(variances).numpy()
    return torch.cat(zs).numpy()


@torch.inference_mode()
def attention_weights(module, loader) -> np.ndarray:
    """Weight of each modality in each cell's fused posterior ``(n_cells, n_modalities)``."""
    return np.concatenate(
        [
            outputs[MODULE_KEYS.ATTENTION_KEY].cpu().numpy()
            for _, outputs in iterate_inference(module, loader)
        ]
    )


@torch.inference_mode()
def class_probabilities(module, loader) -> np.ndarray:
    """Softmax of the module's class (or cluster) logits at each cell's posterior mean."""
    return np.concatenate(
        [
            torch.softmax(module.class_logits(outputs[MODULE_KEYS.QZ_KEY].loc), dim=-1)
            .cpu()
            .numpy()
            for _, outputs in iterate_inference(module, loader)
        ]
    )


def model_attention_weights(
    model: MosaicVI,
    adata: MuData | AnnData | None,
    indices: Sequence[int] | None,
    batch_size: int | None,
) -> pd.DataFrame:
    """:meth:`mosaicvi.MosaicVI.get_attention_weights` (its docstring describes it)."""
    adata, loader = cells_loader(model, adata, indices, batch_size)
    return pd.DataFrame(
        attention_weights(model.module, loader),
        index=selected_obs_names(adata.obs_names, indices),
        columns=list(model.modalities),
    )


def cells_loader(
    model: MosaicVI,
    adata: MuData | AnnData | None,
    indices: Sequence[int] | None,
    batch_size: int | None,
    modalities: Sequence[str] | None = None,
    validated: bool = False,
    **data_loader_kwargs,
) -> tuple[MuData | AnnData, Iterable[dict[str, torch.Tensor]]]:
    """``model``'s validated data and a loader over its ``indices``.

    With ``modalities``, the cells are encoded from those modalities only (the presence mask is
    limited to them). ``validated``: ``adata`` was already validated by the caller.
    """
    if "modality" in data_loader_kwargs:
        raise TypeError(
            "This output has no `modality=` argument. To encode each cell from chosen "
            f"modalities only, pass `modalities=[{data_loader_kwargs['modality']!r}]`."
        )
    if not validated:
        model._check_if_trained(warn=False)
        adata = model._validate_anndata(adata)
    loader = model._make_data_loader(
        adata=adata, indices=indices, batch_size=batch_size, **data_loader_kwargs
    )
    if modalities is not None:
        manager = model.get_anndata_manager(adata, required=True)
        keep = encoding_mask(manager, indices, modalities, model.modalities)
        loader = masked_presence(loader, keep)
    return adata, loader
