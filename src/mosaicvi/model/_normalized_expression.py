"""Normalised expression of any modality for every cell, including cross-modal imputation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS

from mosaicvi._constants import MODULE_KEYS
from mosaicvi.model import _checks as checks
from mosaicvi.model._cell_library import CellLibraries, fit_cell_libraries
from mosaicvi.model._inference import cells_loader, iterate_inference

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from mosaicvi import MosaicVI


@dataclass(frozen=True)
class Decoding:
    """What to decode, checked: the modality, its library, target batches and feature columns.

    See :func:`normalized_expression` for the meaning of each field.
    """

    modality: str
    library: float
    targets: list[int] | None
    measured: list[int]
    columns: np.ndarray
    cell_libraries: CellLibraries | None = None


def decoding(
    model: MosaicVI,
    modality: str | None,
    transform_batch: str | Sequence[str] | None,
    library_size: float | str | None,
    feature_list: Sequence[str] | None,
    gene_list: Sequence[str] | None = None,
) -> Decoding:
    """Check the decoding arguments of ``get_normalized_expression`` and resolve them."""
    modality = checks.check_modality(modality, model.modalities)
    feature_list = checks.chosen_features(feature_list, gene_list)
    manager = model.adata_manager
    per_cell = isinstance(library_size, str) and library_size == "cell"
    cell_libraries = (
        fit_cell_libraries(manager, model.module, modality, list(model.modalities))
        if per_cell
        else None
    )
    return Decoding(
        modality,
        checks.decoding_library(model.module, modality, "median" if per_cell else library_size),
        checks.transform_batch_codes(manager, modality, model.modalities, transform_batch),
        checks.measuring_batch_codes(manager, modality, model.modalities),
        checks.feature_columns(model.feature_names[modality], modality, feature_list),
        cell_libraries,
    )


def model_normalized_expression(
    model: MosaicVI,
    adata,
    indices: Sequence[int] | None,
    modality: str | None,
    transform_batch: str | Sequence[str] | None,
    feature_list: Sequence[str] | None,
    library_size: float | str | None,
    n_samples: int,
    n_samples_overall: int | None,
    use_z_mean: bool,
    batch_size: int | None,
    return_mean: bool,
    return_numpy: bool,
    modalities: Sequence[str] | None,
    gene_list: Sequence[str] | None = None,
) -> pd.DataFrame | np.ndarray:
    """:meth:`mosaicvi.MosaicVI.get_normalized_expression` (whose docstring describes it)."""
    model._check_if_trained(warn=False)
    adata = model._validate_anndata(adata)
    plan = decoding(model, modality, transform_batch, library_size, feature_list, gene_list)
    indices = sample_indices(adata.n_obs, indices, n_samples, n_samples_overall)
    _, loader = cells_loader(model, adata, indices, batch_size, modalities, validated=True)
    values = normalized_expression(model.module, loader, plan, n_samples, use_z_mean)
    if n_samples_overall is not None:
        return values[0]
    if n_samples > 1 and return_mean:
        values = values.mean(0)
    elif n_samples == 1:
        values = values[0]
    if return_numpy or values.ndim == 3:
        return values
    names = model.feature_names[plan.modality][plan.columns]
    return pd.DataFrame(values, index=adata.obs_names[indices], columns=names)


def sample_indices(
    n_obs: int,
    indices: Sequence[int] | np.ndarray | None,
    n_samples: int,
    n_samples_overall: int | None,
) -> np.ndarray:
    """Positions of the cells to decode: ``indices`` (or all), or random draws of them."""
    if n_samples < 1:
        raise ValueError(f"`n_samples` must be at least 1, got {n_samples}.")
    indices = np.arange(n_obs) if indices is None else np.asarray(indices).ravel()
    if indices.dtype == bool:
        indices = np.flatnonzero(indices)
    if n_samples_overall is not None:
        if n_samples != 1:
            raise ValueError("Give either `n_samples` or `n_samples_overall`, not both.")
        indices = np.random.choice(indices, size=int(n_samples_overall), replace=True)
    return indices


def posterior_predictive(
    model: MosaicVI,
    adata,
    indices: Sequence[int] | None,
    modality: str | None,
    n_samples: int,
    library_size: float | str,
    feature_list: Sequence[str] | None,
    batch_size: int | None,
    modalities: Sequence[str] | None,
    use_z_mean: bool,
    gene_list: Sequence[str] | None = None,
) -> np.ndarray:
    """:meth:`mosaicvi.MosaicVI.posterior_predictive_sample` (its docstring describes it)."""
    model._check_if_trained(warn=False)
    adata = model._validate_anndata(adata)
    plan = decoding(model, modality, None, library_size, feature_list, gene_list)
    indices = sample_indices(adata.n_obs, indices, n_samples, None)
    _, loader = cells_loader(model, adata, indices, batch_size, modalities, validated=True)
    values = normalized_expression(model.module, loader, plan, n_samples, use_z_mean, True)
    return values[0] if n_samples == 1 else values


def normalized_expression(
    module,
    loader: Iterable[dict[str, torch.Tensor]],
    plan: Decoding,
    n_samples: int = 1,
    use_z_mean: bool = False,
    draw: bool = False,
) -> np.ndarray:
    """Decoded values ``(n_samples, n_cells, len(columns))`` of the loader's cells.

    The minibatches of :func:`iter_normalized_expression`, concatenated.
    """
    chunks = iter_normalized_expression(module, loader, plan, n_samples, use_z_mean, draw)
    return np.concatenate(list(chunks), axis=1)


@torch.inference_mode()
def iter_normalized_expression(
    module,
    loader: Iterable[dict[str, torch.Tensor]],
    plan: Decoding,
    n_samples: int = 1,
    use_z_mean: bool = False,
    draw: bool = False,
) -> Iterator[np.ndarray]:
    """Decoded values ``(n_samples, minibatch size, len(columns))``, one minibatch at a time.

    Parameters
    ----------
    module
        A :class:`~mosaicvi.module.MosaicVAE`.
    loader
        Minibatches of the cells (their presence mask may be limited to chosen modalities).
    plan
        What to decode (:func:`decoding`): ``plan.modality`` at library ``plan.library``, into
        the batches ``plan.targets`` (averaged), or when ``None`` each cell's own batch when it
        measured the modality, else the average over ``plan.measured`` (the codes of the batches
        that measured it); features a cell's batch did not measure (feature masks) the average
        over the batches that measured each. Only the features at ``plan.columns``.
    n_samples
        Posterior samples of ``z`` per cell.
    use_z_mean
        Decode the posterior mean (repeated ``n_samples`` times) instead of samples.
    draw
        Return counts drawn from the decoded distribution (the likelihood's
        :meth:`~mosaicvi.nn._likelihoods.Likelihood.sample`, dispersion included) instead of its
        expected values; a cell decoded into several batches takes its draw from one of them at
        random.
    """
    for tensors, inference in iterate_inference(module, loader, n_samples=n_samples):
        z = inference[MODULE_KEYS.QZM_KEY] if use_z_mean else inference[MODULE_KEYS.Z_KEY]
        if z.dim() == 2:
            z = z.unsqueeze(0)
        if use_z_mean and n_samples > 1:
            z = z.expand(n_samples, -1, -1)
        library = plan.library
        if plan.cell_libraries is not None:
            library = plan.cell_libraries.per_cell(module, tensors, list(module.modality_names))
        values = decode_samples(
            module, plan.modality, z, tensors, library, plan.targets, plan.measured, draw
        )
        yield values[..., plan.columns].cpu().numpy()


def decode_samples(
    module,
    modality: str,
    z: torch.Tensor,
    tensors: dict[str, torch.Tensor],
    library: float | torch.Tensor,
    targets: list[int] | None,
    measured: list[int],
    draw: bool = False,
) -> torch.Tensor:
    """Decode ``z`` ``(S, n, L)`` into ``targets`` (averaged) or the default batches.

    ``library``: one library for every cell, or one per cell ``(n,)``.

    Expected values, or with ``draw`` new counts (see :func:`normalized_expression`).
    """
    n_draws, n_cells, _ = z.shape
    device = z.device
    flat = z.reshape(n_draws * n_cells, -1)
    own = tensors[REGISTRY_KEYS.BATCH_KEY].reshape(-1).long().to(device).repeat(n_draws)
    cat_covs = tensors.get(REGISTRY_KEYS.CAT_COVS_KEY)
    if cat_covs is not None:
        cat_covs = cat_covs.to(device).repeat(n_draws, 1)
    if isinstance(library, torch.Tensor):
        lib = library.to(device=device, dtype=flat.dtype).reshape(-1).repeat(n_draws)
    else:
        lib = torch.full((flat.shape[0],), float(library), device=device)
    # posterior means of the feature embeddings (a graph), computed once for every decoding
    v = None if module.graph_encoder is None else module.graph_encoder().loc
    likelihood = module.likelihoods[modality]

    def decode_into(rows: torch.Tensor, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """Likelihood parameters of ``rows`` in ``batch``, at ``lib``."""
        cells_covs = None if cat_covs is None else cat_covs[rows]
        return module.decode_modality(
            modality, flat[rows], batch, lib[rows], cells_covs, v, measured_only=False
        )

    def decode(rows: torch.Tensor, codes: list[int | None]) -> torch.Tensor:
        """``rows`` decoded into each batch of ``codes`` (``None``: their own), averaged.

        With ``draw``: counts drawn in one batch of ``codes`` per row, chosen at random.
        """
        batches = [own[rows] if c is None else torch.full_like(own[rows], c) for c in codes]
        if draw:
            pick = torch.randint(len(codes), (len(rows),), device=device)
            chosen = torch.stack(batches)[pick, torch.arange(len(rows), device=device)]
            return likelihood.sample(decode_into(rows, chosen))
        return torch.stack([likelihood.mean(decode_into(rows, b)) for b in batches]).mean(0)

    def fill_unmeasured(rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Unmeasured features of a cell's own batch: the average over the batches measuring them.

        Feature masks; as for a missing modality.
        """
        own_mask = module.feature_mask(modality, own[rows])
        if own_mask is None or bool(own_mask.all()):
            return values
        total, count = torch.zeros_like(values), values.new_zeros(values.shape[-1])
        for code in measured:
            batch = torch.full_like(own[rows], code)
            weight = module.feature_mask(modality, batch[:1])[0].to(values.dtype)
            total += likelihood.mean(decode_into(rows, batch)) * weight
            count += weight
        return torch.where(own_mask, values, total / count.clamp(min=1.0))

    if targets is not None:
        return decode(torch.arange(flat.shape[0], device=device), targets).reshape(
            n_draws, n_cells, -1
        )
    own_measured = torch.isin(own, torch.tensor(measured, device=device))
    out = None
    for rows, codes in (
        (torch.nonzero(own_measured, as_tuple=True)[0], [None]),
        (torch.nonzero(~own_measured, as_tuple=True)[0], measured),
    ):
        if rows.numel():
            values = decode(rows, codes)
            if codes == [None] and not draw:
                values = fill_unmeasured(rows, values)
            if out is None:
                out = flat.new_empty((flat.shape[0], values.shape[-1]))
            out[rows] = values
    return out.reshape(n_draws, n_cells, -1)
