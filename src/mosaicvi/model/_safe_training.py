"""Checks around training and outputs: stale or degenerate data, non-finite loss, interrupts.

- At setup, a fingerprint of what the model reads (the cell names and the aligned counts in
  ``obsm``) goes into the registry; training and every output first check that none of it was
  edited since. Editing a modality's ``X`` after setup changes none of it, unless the edit wrote
  in place into arrays setup shared with ``X``: the error then says to keep counts in a layer.
- Training refuses batches of a single cell.
- A non-finite loss stops training with a ``FloatingPointError`` naming the loss term.
- ``KeyboardInterrupt`` (Ctrl+C, or Jupyter's interrupt) stops training cleanly: the model keeps
  the weights of its best epoch so far and is usable; the SIGINT handler that Lightning switches
  off during its shutdown is restored.
"""

from __future__ import annotations

import logging
import signal
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from scvi import REGISTRY_KEYS

from mosaicvi.data._anndata_layout import data_feature_names
from mosaicvi.data._source_fingerprint import (
    changes_since_setup,
    shared_sources,
    source_fingerprint,
)
from mosaicvi.model._fields import obs_keys
from mosaicvi.model._query_checks import check_query_categories, check_same_features
from mosaicvi.train._guards import (
    BestWeightsKeeper,
    NonFiniteLossError,
    NonFiniteLossGuard,
    ResumeCheckpoint,
    diverged_message,
    non_finite_parameters,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Callable

    from anndata import AnnData
    from mudata import MuData
    from scvi.data import AnnDataManager

    from mosaicvi import MosaicVI

logger = logging.getLogger(__name__)

#: Registry entry holding the :func:`source_fingerprint` of the data at setup (a new key: the
#: fingerprints of mosaicvi 0.1, of the modalities' own matrices, are not compared).
FINGERPRINT_REGISTRY_KEY = "mosaicvi_read_fingerprint"


def record_fingerprint(manager: AnnDataManager) -> None:
    """Store the fingerprint of the manager's data in its registry."""
    registry = manager.registry
    registry[FINGERPRINT_REGISTRY_KEY] = source_fingerprint(manager.adata, registry["setup_args"])


def check_data_unchanged(manager: AnnDataManager | None) -> None:
    """Raise a ValueError naming what changed in the manager's data since its setup."""
    if manager is None:
        return
    saved = manager.registry.get(FINGERPRINT_REGISTRY_KEY)
    if saved is None:
        return
    setup_args = manager.registry["setup_args"]
    changes = changes_since_setup(saved, source_fingerprint(manager.adata, setup_args))
    if not changes:
        return
    method = manager.registry.get("setup_method_name", "setup_mudata")
    shared = [
        source
        for part, source in shared_sources(manager.adata, setup_args).items()
        if any(change.startswith(f"{part}:") for change in changes)
    ]
    why = (
        f" Setup shares its count arrays with {', '.join(shared)}, and an in-place edit of "
        "those (e.g. normalising or log-transforming X) reached the model's copy."
        if shared
        else ""
    )
    if method == "setup_mudata":
        keep, setup = (
            "mdata['rna'].layers['counts'] = mdata['rna'].X.copy()",
            "layers={'rna': 'counts'}",
        )
    else:
        keep, setup = "adata.layers['counts'] = adata.X.copy()", "layer='counts'"
    raise ValueError(
        "The data the model reads changed after it was set up (" + "; ".join(changes) + ")."
        f"{why} Set the raw counts up again with `MosaicVI.{method}(...)` (and create the model "
        "again if it is the training data), or undo the edit. To normalise or log-transform X "
        f"after setup, first keep the raw counts in a layer (`{keep}`) and set up on it "
        f"(`{setup}`)."
    )


def set_up_like_training(model: MosaicVI, adata: MuData | AnnData) -> None:
    """Set ``adata`` up with ``model``'s setup method and saved registry, unless it already is.

    scvi-tools' generic field transfer cannot build the aligned modality matrices and presence
    mask. The data's features must be the training features, in the same order.
    """
    if model.get_anndata_manager(adata) is None:
        registry = model.adata_manager.registry
        setup = getattr(type(model), registry["setup_method_name"])
        setup(adata, source_registry=registry, **registry["setup_args"])
        manager = model._get_most_recent_anndata_manager(adata, required=True)
        model._register_manager_for_instance(manager)
    check_same_features(
        data_feature_names(adata, model.adata_manager.registry["setup_args"]), model.feature_names
    )


def check_new_data_categories(adata: MuData | AnnData, registry: dict) -> None:
    """Refuse new data with batches or labels the model was not trained with (named clearly).

    scvi-tools transfers the setup of a copy of registered data, and refuses unknown batches or
    labels with a message that names neither the argument nor the fix.
    """
    args = registry["setup_args"]
    keys = obs_keys(
        args.get("batch_key"), args.get("labels_key"), args.get("categorical_covariate_keys")
    )
    check_query_categories(adata.obs, {}, keys, registry)


def check_training_batches(manager: AnnDataManager) -> None:
    """Refuse batches of a single cell (their batch-specific parameters cannot be learnt)."""
    codes = np.asarray(manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
    sizes = np.bincount(codes.astype(np.int64))
    single = np.flatnonzero(sizes == 1)
    if len(single):
        mapping = manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY)
        names = np.asarray(mapping.categorical_mapping)[single][:5].tolist()
        key = mapping.original_key
        raise ValueError(
            f"`batch_key={key!r}`: batches {names} have a single cell, too few to learn their "
            "batch-specific decoder parameters. Merge them into a related batch or drop "
            "those cells, then set the data up again."
        )


def guard_callbacks(
    callbacks: list | None,
    checkpoint_dir: str | os.PathLike | None,
    check_loss_every_n_steps: int | None,
    keeper: BestWeightsKeeper,
) -> list:
    """The user's callbacks, the checkpoint writer, the non-finite loss guard and ``keeper``."""
    callbacks = list(callbacks or [])
    if checkpoint_dir is not None:
        callbacks.append(ResumeCheckpoint(checkpoint_dir))
    return [*callbacks, NonFiniteLossGuard(check_loss_every_n_steps), keeper]


def guarded_fit(model, fit: Callable[[], Any], keeper: BestWeightsKeeper, lr: float | None):
    """Run ``fit()``; finish an interrupted fit and diagnose diverged weights.

    Parameters
    ----------
    model
        The model being trained (its module, history and trained flag are read and set).
    fit
        Runs the fit (scvi-tools' ``train`` with ``keeper`` among the callbacks).
    keeper
        The :class:`~mosaicvi.train._guards.BestWeightsKeeper` of the fit.
    lr
        The learning rate, named in the message about diverged weights.
    """
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with warnings.catch_warnings():
            # distributed_train_kwargs replaced scvi-tools' early stopping under DDP.
            warnings.filterwarnings("ignore", message="early_stopping was automatically")
            return fit()
    except SystemExit:
        if not keeper.interrupted:
            raise
        finish_interrupted(model, keeper)
    except ValueError as error:
        # NaN weights make torch refuse the posterior's parameters before any loss exists.
        bad = non_finite_parameters(model.module)
        if not bad:
            raise
        raise NonFiniteLossError(diverged_message(bad, lr)) from error
    finally:
        if sigint is not None and signal.getsignal(signal.SIGINT) is not sigint:
            signal.signal(signal.SIGINT, sigint)


def finish_interrupted(model, keeper: BestWeightsKeeper) -> None:
    """Make an interrupted model usable: best weights (restored), history, eval mode."""
    if keeper.best_state is None:
        warnings.warn(
            "Training was interrupted before the first epoch ended; the model is untrained.",
            UserWarning,
            stacklevel=4,
        )
        return
    history = getattr(getattr(keeper.trainer, "logger", None), "history", None)
    if isinstance(history, dict):
        model.history_ = {k: v.copy() for k, v in history.items()}
    model.module.eval()
    model.is_trained_ = True
    warnings.warn(
        f"Training was interrupted; the model keeps the weights of epoch {keeper.best_epoch}, "
        "the best so far. Call `train()` again to continue from them.",
        UserWarning,
        stacklevel=4,
    )
