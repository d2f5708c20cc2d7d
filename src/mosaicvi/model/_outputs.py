"""Per-cell and per-feature outputs of a trained MosaicVI: latent, attention, feature embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from mudata import MuData

from mosaicvi._constants import PRESENCE_KEY

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from anndata import AnnData


class MosaicOutputsMixin:
    """Outputs of :class:`~mosaicvi.MosaicVI` read off a trained model."""

    def get_latent_representation(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        mc_samples: int = 5_000,
        batch_size: int | None = None,
        return_dist: bool = False,
        modalities: Sequence[str] | None = None,
        **data_loader_kwargs,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Latent representation of each cell, from all its modalities or from chosen ones.

        Parameters
        ----------
        adata
            Data registered like the training data (default: the training data).
        indices
            Cells to use (default: all).
        give_mean
            Return the posterior mean (else one sample).
        mc_samples
            Unused (the posterior is Gaussian); kept for scvi-tools compatibility.
        batch_size
            Minibatch size (default: scvi-tools' setting).
        return_dist
            Return the posterior means and variances.
        modalities
            Encode each cell from these modalities only (e.g. ``["rna"]``), as if it had measured
            nothing else: with paired data, comparing the RNA-only and ATAC-only codes of the same
            cells measures how well the modalities are aligned. Every selected cell must have
            measured at least one of them. ``None``: every modality the cell has.
        **data_loader_kwargs
            Passed to the data loader.

        Returns
        -------
        Array ``(n_cells, n_latent)``, or ``(means, variances)`` with ``return_dist``.

        Examples
        --------
        >>> mdata.obsm["X_mosaicvi"] = model.get_latent_representation()  # doctest: +SKIP
        >>> z_rna = model.get_latent_representation(paired, modalities=["rna"])  # doctest: +SKIP
        """
        if modalities is None:
            return super().get_latent_representation(
                adata,
                indices=indices,
                give_mean=give_mean,
                mc_samples=mc_samples,
                batch_size=batch_size,
                return_dist=return_dist,
                **data_loader_kwargs,
            )
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        keep = self._encoding_mask(adata, indices, modalities)
        loader = self._make_data_loader(
            adata=adata, indices=indices, batch_size=batch_size, **data_loader_kwargs
        )
        return super().get_latent_representation(
            give_mean=give_mean,
            mc_samples=mc_samples,
            return_dist=return_dist,
            dataloader=masked_presence(loader, keep),
        )

    def _encoding_mask(
        self, adata: MuData | AnnData, indices: Sequence[int] | None, modalities: Sequence[str]
    ) -> torch.Tensor:
        """Mask of the ``modalities`` to encode from; refuses cells that measured none of them."""
        keep = self._modality_mask(modalities)
        manager = self.get_anndata_manager(adata, required=True)
        presence = np.asarray(manager.get_from_registry(PRESENCE_KEY), dtype=bool)
        chosen = presence if indices is None else presence[np.asarray(indices)]
        empty = ~(chosen & keep.numpy()).any(axis=1)
        if empty.any():
            raise ValueError(
                f"{int(empty.sum())} of the selected cells measured none of {list(modalities)}; "
                "select cells that did with `indices`."
            )
        return keep

    def _modality_mask(self, modalities: Sequence[str]) -> torch.Tensor:
        names = list(self.modalities)
        if isinstance(modalities, str):
            modalities = [modalities]
        unknown = [m for m in modalities if m not in names]
        if unknown or not modalities:
            raise ValueError(f"`modalities` must name some of {names}; got {list(modalities)}.")
        return torch.tensor([m in modalities for m in names])

    @torch.inference_mode()
    def get_attention_weights(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Attention weight of each modality in each cell's latent code.

        Parameters
        ----------
        adata
            Data registered like the training data (default: the training data).
        indices
            Cells to use (default: all).
        batch_size
            Minibatch size (default: scvi-tools' setting).

        Returns
        -------
        DataFrame (cells x modalities); weights are 0 for modalities a cell lacks and sum to 1.
        """
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        weights = []
        for tensors in loader:
            outputs = self.module.inference(**self.module._get_inference_input(tensors))
            weights.append(outputs["attention"].cpu().numpy())
        obs_names = adata.obs_names if indices is None else adata.obs_names[np.asarray(indices)]
        return pd.DataFrame(
            np.concatenate(weights), index=obs_names, columns=list(self.modalities)
        )

    @torch.inference_mode()
    def get_feature_embeddings(
        self, key_added: str | None = None, return_std: bool = False
    ) -> dict[str, pd.DataFrame]:
        """Embedding of every feature in the latent space (models with a guidance graph).

        Feature ``f`` of modality ``m`` is decoded from ``z . v_f``, so cells lie in the direction
        of the features they express or open; linked features of different modalities (a gene
        and its promoter peaks) get nearby embeddings.

        Parameters
        ----------
        key_added
            If given, also write the means to ``varm[key_added]`` of each modality (and the
            standard deviations to ``varm[key_added + "_std"]`` with ``return_std``) of the
            model's MuData, or of its AnnData when it has one modality.
        return_std
            Return the posterior standard deviations instead of the means.

        Returns
        -------
        Modality -> DataFrame (features x latent dimensions).

        Examples
        --------
        >>> embeddings = model.get_feature_embeddings(key_added="X_mosaicvi")  # doctest: +SKIP
        >>> embeddings["rna"].loc["Gad1"]  # doctest: +SKIP
        """
        self._check_if_trained(warn=False)
        if self.module.graph_encoder is None:
            raise ValueError(
                "This model has no guidance graph, so no feature embeddings; build one with "
                "`mosaicvi.data.guidance_graph(mdata)` and pass `guidance_graph=` to MosaicVI."
            )
        self.module.eval()
        qv = self.module.graph_encoder()
        frames, stds = {}, {}
        columns = [f"dim_{i}" for i in range(qv.loc.shape[1])]
        for m, names in self.feature_names.items():
            part = slice(*self.module.feature_slices[m])
            frames[m] = pd.DataFrame(qv.loc[part].cpu().numpy(), index=names, columns=columns)
            stds[m] = pd.DataFrame(qv.scale[part].cpu().numpy(), index=names, columns=columns)
        if key_added is not None:
            self._write_feature_embeddings(key_added, frames, stds if return_std else None)
        return stds if return_std else frames

    def _write_feature_embeddings(
        self,
        key: str,
        means: dict[str, pd.DataFrame],
        stds: dict[str, pd.DataFrame] | None,
    ) -> None:
        targets = {}
        for m, frame in means.items():
            if isinstance(self.adata, MuData):
                target = self.adata.mod[m]
            elif len(means) == 1:
                target = self.adata
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


def masked_presence(loader, keep: torch.Tensor) -> Iterator[dict[str, torch.Tensor]]:
    """Minibatches of ``loader`` with the presence mask limited to the ``keep`` modalities."""
    for tensors in loader:
        presence = tensors[PRESENCE_KEY]
        tensors[PRESENCE_KEY] = presence * keep.to(device=presence.device, dtype=presence.dtype)
        yield tensors
