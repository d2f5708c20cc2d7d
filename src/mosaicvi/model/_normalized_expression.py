"""Normalised expression of any modality for every cell, including cross-modal imputation."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS

from mosaicvi._constants import PRESENCE_KEY
from mosaicvi.model._outputs import masked_presence

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal

    from anndata import AnnData
    from mudata import MuData


class NormalizedExpressionMixin:
    """Decoded (denoised, batch-corrected) values of every modality for every cell."""

    def measuring_batches(self, modality: str) -> list[str]:
        """Batches in which some training cell measured ``modality``, in category order.

        Only these batches have trained decoder parameters (scale, bias, dispersion) for the
        modality, so only these can be decoded into.

        Examples
        --------
        >>> model.measuring_batches("atac")  # doctest: +SKIP
        ['09A', '09B', '09C', '09D', '09I', '09J', '09K', '09L']
        """
        codes = self._measuring_batch_codes(self._check_modality(modality))
        categories = self._batch_categories()
        return [str(categories[c]) for c in codes]

    @torch.inference_mode()
    def get_normalized_expression(
        self,
        adata: MuData | AnnData | None = None,
        indices: Sequence[int] | None = None,
        modality: str | None = None,
        transform_batch: str | Sequence[str] | None = None,
        feature_list: Sequence[str] | None = None,
        library_size: float | Literal["median"] | None = None,
        n_samples: int = 1,
        n_samples_overall: int | None = None,
        use_z_mean: bool = False,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool = False,
        modalities: Sequence[str] | None = None,
    ) -> pd.DataFrame | np.ndarray:
        """Normalised values of one modality for every cell, whether or not it measured it.

        Each cell is encoded from the modalities it measured, and ``modality`` is decoded from
        its latent code: for a cell that never measured ``modality`` this is the imputation of the
        missing modality. Decoding always uses a fixed library size, never a cell's observed one
        (which is zero for a modality the cell lacks).

        Parameters
        ----------
        adata
            Data registered like the training data (default: the training data).
        indices
            Cells to use (default: all).
        modality
            Name of the modality to decode (required), e.g. ``"rna"`` or ``"atac"``.
        transform_batch
            Batch (or list of batches, averaged) to decode into, for batch-corrected values. Only
            batches that measured ``modality`` (:meth:`measuring_batches`) are allowed: the others
            have no trained decoder parameters for it. ``None``: each cell's own batch when that
            batch measured ``modality``, else the average over the batches that did.
        feature_list
            Features to return (default: all features of ``modality``).
        library_size
            Library to decode at. ``None``: 1 for count modalities (RNA, ADT, generic counts), so
            values are proportions as scVI's ``library_size=1``, and for ATAC the median number of
            open peaks of the cells that measured it, so values are accessibility probabilities of
            a typical cell. ``"median"``: the median library of the cells that measured the
            modality (total counts; open features for ATAC). A number: that library (counts, or
            open features for ATAC).
        n_samples
            Posterior samples of ``z`` per cell.
        n_samples_overall
            Instead of every cell: this many draws of (random cell, posterior sample), as
            scvi-tools' differential expression asks for. Returns an array
            ``(n_samples_overall, n_features)``.
        use_z_mean
            Decode the posterior mean of ``z`` instead of samples.
        batch_size
            Minibatch size (default: scvi-tools' setting).
        return_mean
            With ``n_samples > 1``, average over samples (else return all samples).
        return_numpy
            Return a numpy array instead of a DataFrame (cells x features).
        modalities
            Encode each cell from these modalities only (e.g. ``["atac"]``), as if it had measured
            nothing else: ``modality="rna", modalities=["atac"]`` imputes RNA from ATAC alone,
            also for paired cells (cross-modal coherence, :mod:`mosaicvi.metrics`). Every
            selected cell must have measured at least one of them. ``None``: every modality the
            cell has.

        Returns
        -------
        DataFrame (cells x features), or an array; ``(n_samples, n_cells, n_features)`` with
        ``n_samples > 1`` and ``return_mean=False``.

        Examples
        --------
        >>> # ATAC accessibility probabilities of every cell, including RNA-only cells
        >>> atac = model.get_normalized_expression(modality="atac")  # doctest: +SKIP
        >>> # RNA proportions decoded into batch "09A" (batch-corrected), averaged over 10 samples
        >>> rna = model.get_normalized_expression(
        ...     modality="rna", transform_batch="09A", n_samples=10
        ... )  # doctest: +SKIP
        >>> # RNA of the paired cells imputed from their ATAC alone
        >>> from_atac = model.get_normalized_expression(
        ...     indices=paired_cells, modality="rna", modalities=["atac"]
        ... )  # doctest: +SKIP
        """
        self._check_if_trained(warn=False)
        adata = self._validate_anndata(adata)
        modality = self._check_modality(modality)
        targets = self._transform_batch_codes(modality, transform_batch)
        measured = self._measuring_batch_codes(modality)
        library = self._decoding_library(modality, library_size)
        columns = self._feature_columns(modality, feature_list)
        if n_samples < 1:
            raise ValueError(f"`n_samples` must be at least 1, got {n_samples}.")
        indices = np.arange(adata.n_obs) if indices is None else np.asarray(indices).ravel()
        if indices.dtype == bool:
            indices = np.flatnonzero(indices)
        if n_samples_overall is not None:
            if n_samples != 1:
                raise ValueError("Give either `n_samples` or `n_samples_overall`, not both.")
            indices = np.random.choice(indices, size=int(n_samples_overall), replace=True)
        loader = self._make_data_loader(adata=adata, indices=indices, batch_size=batch_size)
        if modalities is not None:
            loader = masked_presence(loader, self._encoding_mask(adata, indices, modalities))
        chunks = []
        for tensors in loader:
            inference = self.module.inference(
                **self.module._get_inference_input(tensors), n_samples=n_samples
            )
            z = inference["qzm"] if use_z_mean else inference["z"]
            if z.dim() == 2:
                z = z.unsqueeze(0)
            if use_z_mean and n_samples > 1:
                z = z.expand(n_samples, -1, -1)
            values = self._decode_samples(modality, z, tensors, library, targets, measured)
            chunks.append(values[..., columns].cpu().numpy())
        values = np.concatenate(chunks, axis=1)
        if n_samples_overall is not None:
            return values[0]
        if n_samples > 1 and return_mean:
            values = values.mean(0)
        elif n_samples == 1:
            values = values[0]
        if return_numpy or values.ndim == 3:
            return values
        names = self.feature_names[modality][columns]
        return pd.DataFrame(values, index=adata.obs_names[indices], columns=names)

    def _decode_samples(
        self,
        modality: str,
        z: torch.Tensor,
        tensors: dict[str, torch.Tensor],
        library: float,
        targets: list[int] | None,
        measured: list[int],
    ) -> torch.Tensor:
        """Decode ``z`` ``(S, n, L)`` into ``targets`` (averaged) or the default batches."""
        n_draws, n_cells, _ = z.shape
        device = z.device
        flat = z.reshape(n_draws * n_cells, -1)
        own = tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long().to(device).repeat(n_draws)
        cat_covs = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
        if cat_covs is not None:
            cat_covs = cat_covs.to(device).repeat(n_draws, 1)
        lib = torch.full((flat.shape[0],), float(library), device=device)

        def decode(rows: torch.Tensor, codes: list[int]) -> torch.Tensor:
            decoded = [
                self.module.decode_normalized(
                    modality,
                    flat[rows],
                    torch.full_like(own[rows], code),
                    lib[rows],
                    None if cat_covs is None else cat_covs[rows],
                )
                for code in codes
            ]
            return torch.stack(decoded).mean(0)

        if targets is not None:
            out = decode(torch.arange(flat.shape[0], device=device), targets)
        else:
            out = flat.new_empty((flat.shape[0], len(self.feature_names[modality])))
            own_measured = torch.isin(own, torch.tensor(measured, device=device))
            if own_measured.any():
                rows = torch.nonzero(own_measured, as_tuple=True)[0]
                out[rows] = self.module.decode_normalized(
                    modality,
                    flat[rows],
                    own[rows],
                    lib[rows],
                    None if cat_covs is None else cat_covs[rows],
                )
            if not own_measured.all():
                out[~own_measured] = decode(
                    torch.nonzero(~own_measured, as_tuple=True)[0], measured
                )
        return out.reshape(n_draws, n_cells, -1)

    def _check_modality(self, modality: str | None) -> str:
        names = list(self.modalities)
        if modality is None or modality not in names:
            raise ValueError(
                f"`modality` must be one of the model's modalities {names}; got {modality!r}."
            )
        return modality

    def _batch_categories(self) -> np.ndarray:
        state = self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY)
        return np.asarray(state.categorical_mapping)

    def _measuring_batch_codes(self, modality: str) -> list[int]:
        """Codes of the training batches with at least one cell that measured ``modality``."""
        column = list(self.modalities).index(modality)
        presence = np.asarray(self.adata_manager.get_from_registry(PRESENCE_KEY), dtype=bool)
        batch = np.asarray(self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
        return sorted(int(b) for b in np.unique(batch[presence[:, column]]))

    def _transform_batch_codes(
        self, modality: str, transform_batch: str | Sequence[str] | None
    ) -> list[int] | None:
        """Codes of the batches to decode into; refuses batches that never measured ``modality``."""
        if transform_batch is None:
            return None
        chosen = (
            [transform_batch]
            if isinstance(transform_batch, str) or np.ndim(transform_batch) == 0
            else list(transform_batch)
        )
        if not chosen:
            raise ValueError("`transform_batch` is an empty list; give batch names or None.")
        categories = self._batch_categories()
        measured = self._measuring_batch_codes(modality)
        allowed = [str(categories[c]) for c in measured]
        codes = []
        for batch in chosen:
            where = np.flatnonzero(categories.astype(str) == str(batch))
            if len(where) == 0:
                raise ValueError(
                    f"`transform_batch` {batch!r} is not a batch of the model; batches: "
                    f"{[str(c) for c in categories]}."
                )
            if int(where[0]) not in measured:
                raise ValueError(
                    f"`transform_batch` {batch!r} never measured {modality!r}, so the model has no "
                    f"trained {modality!r} decoder parameters for it. Decode into a batch that "
                    f"measured {modality!r}: {allowed} (or use transform_batch=None)."
                )
            codes.append(int(where[0]))
        return codes

    def _decoding_library(self, modality: str, library_size: float | str | None) -> float:
        reference = float(torch.exp(self.module.decoders[modality].log_library_reference))
        if library_size is None:
            return self.module.likelihoods[modality].default_decoding_library(reference)
        if isinstance(library_size, str):
            if library_size != "median":
                raise ValueError(
                    f"`library_size` must be a positive number, 'median' or None; got {library_size!r}."
                )
            return reference
        if not np.isfinite(library_size) or library_size <= 0:
            raise ValueError(f"`library_size` must be a positive number, got {library_size}.")
        return float(library_size)

    def _feature_columns(self, modality: str, feature_list: Sequence[str] | None) -> np.ndarray:
        names = self.feature_names[modality]
        if feature_list is None:
            return np.arange(len(names))
        if isinstance(feature_list, str):
            feature_list = [feature_list]
        positions = names.get_indexer(list(feature_list))
        if (positions < 0).any():
            missing = [f for f, p in zip(feature_list, positions, strict=True) if p < 0][:5]
            raise ValueError(f"`feature_list` names features not in {modality!r}: {missing}.")
        return positions
