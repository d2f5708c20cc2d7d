"""Per-feature outputs of a trained MosaicVI: the feature embeddings of the guidance graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import torch
from mudata import MuData

if TYPE_CHECKING:
    from anndata import AnnData


@torch.inference_mode()
def feature_embeddings(
    module, feature_names: dict[str, pd.Index]
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Posterior means and standard deviations of every feature's embedding, per modality.

    Parameters
    ----------
    module
        A :class:`~mosaicvi.module.MosaicVAE` with a graph encoder.
    feature_names
        Modality -> its feature names, in model order.
    """
    if module.graph_encoder is None:
        raise ValueError(
            "This model has no guidance graph, so no feature embeddings; build one with "
            "`mosaicvi.data.guidance_graph(mdata)` and pass `guidance_graph=` to MosaicVI."
        )
    module.eval()
    qv = module.graph_encoder()
    frames, stds = {}, {}
    columns = [f"dim_{i}" for i in range(qv.loc.shape[1])]
    for m, names in feature_names.items():
        part = slice(*module.feature_slices[m])
        frames[m] = pd.DataFrame(qv.loc[part].cpu().numpy(), index=names, columns=columns)
        stds[m] = pd.DataFrame(qv.scale[part].cpu().numpy(), index=names, columns=columns)
    return frames, stds


def write_feature_embeddings(
    adata: MuData | AnnData,
    key: str,
    means: dict[str, pd.DataFrame],
    stds: dict[str, pd.DataFrame] | None,
) -> None:
    """Write ``means`` (and ``stds``) to ``varm`` of each modality of ``adata``.

    Parameters
    ----------
    adata
        The model's data: a MuData, or an AnnData when the model has one modality.
    key
        ``varm`` key of the means; the standard deviations go under ``key + "_std"``.
    means
        Modality -> embeddings (features x latent dimensions).
    stds
        Modality -> standard deviations, or ``None`` to write none.
    """
    targets = {}
    for m, frame in means.items():
        if isinstance(adata, MuData):
            target = adata.mod[m]
        elif len(means) == 1:
            target = adata
        else:
            raise ValueError(
                "The model's AnnData holds several modalities along var; `key_added` can only "
                "write to a MuData. Use the returned DataFrames instead."
            )
        if not target.var_names.equals(frame.index):
            raise ValueError(
                f"The features of modality {m!r} changed since setup; cannot write varm."
            )
        targets[m] = target
    for m, target in targets.items():
        target.varm[key] = means[m].to_numpy()
        if stds is not None:
            target.varm[f"{key}_std"] = stds[m].to_numpy()


def modality_var(data: MuData | AnnData, modality: str, names: pd.Index) -> pd.DataFrame:
    """A copy of the ``var`` rows of ``names`` in ``modality`` (a MuData's, or the AnnData's)."""
    var = data.mod[modality].var if isinstance(data, MuData) else data.var
    return var.loc[names].copy()


def model_feature_embeddings(
    model, key_added: str | None, return_std: bool
) -> dict[str, pd.DataFrame]:
    """:meth:`mosaicvi.MosaicVI.get_feature_embeddings` (its docstring describes it)."""
    model._check_if_trained(warn=False)
    means, stds = feature_embeddings(model.module, model.feature_names)
    if key_added is not None:
        write_feature_embeddings(model.adata, key_added, means, stds if return_std else None)
    return stds if return_std else means
