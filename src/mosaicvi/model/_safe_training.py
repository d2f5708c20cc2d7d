"""Checks around training and outputs: stale or degenerate data, non-finite loss, interrupts."""

from __future__ import annotations

import logging
import signal
import warnings

import numpy as np
from scvi import REGISTRY_KEYS

from mosaicvi.data._source_fingerprint import changes_since_setup, source_fingerprint
from mosaicvi.model._distributed import distributed_train_kwargs
from mosaicvi.model._fields import obs_keys
from mosaicvi.model._query_checks import check_query_categories
from mosaicvi.train._guards import (
    BestWeightsKeeper,
    NonFiniteLossError,
    NonFiniteLossGuard,
    ResumeCheckpoint,
    diverged_message,
    non_finite_parameters,
)

logger = logging.getLogger(__name__)

#: Registry entry holding the :func:`source_fingerprint` of the data at setup.
FINGERPRINT_REGISTRY_KEY = "mosaicvi_source_fingerprint"


class SafeTrainingMixin:
    """Guards for :class:`~mosaicvi.MosaicVI` training and outputs.

    - At setup, a fingerprint of the data goes into the registry; training and every output
      first check that the data was not edited since (the aligned copies in ``obsm`` would be
      stale).
    - Training refuses batches of a single cell.
    - A non-finite loss stops training with a ``FloatingPointError`` naming the loss term
      (checked every step on the CPU, every 50 steps on a GPU without stalling it;
      ``train(check_loss_every_n_steps=1)`` checks every step everywhere).
    - ``train(checkpoint_dir=...)`` writes ``last.ckpt`` there after every epoch;
      ``train(ckpt_path=".../last.ckpt")`` resumes from it (epochs, weights, optimiser state).
    - ``KeyboardInterrupt`` (Ctrl+C, or Jupyter's interrupt) stops training cleanly: the model
      keeps the weights of its best epoch so far and is usable; the SIGINT handler that Lightning
      switches off during its shutdown is restored.
    """

    @classmethod
    def register_manager(cls, adata_manager) -> None:
        """Register the manager, recording a fingerprint of its data in the registry."""
        registry = adata_manager.registry
        registry[FINGERPRINT_REGISTRY_KEY] = source_fingerprint(
            adata_manager.adata, registry["setup_args"]
        )
        super().register_manager(adata_manager)

    def _check_data_unchanged(self, adata=None) -> None:
        manager = self.get_anndata_manager(adata if adata is not None else self.adata)
        if manager is None:
            return
        saved = manager.registry.get(FINGERPRINT_REGISTRY_KEY)
        if saved is None:
            return
        changes = changes_since_setup(
            saved, source_fingerprint(manager.adata, manager.registry["setup_args"])
        )
        if changes:
            method = manager.registry.get("setup_method_name", "setup_mudata")
            raise ValueError(
                "The data changed after it was set up (" + "; ".join(changes) + "), so the "
                f"copies the model reads are stale. Run `MosaicVI.{method}(...)` on it again "
                "(and create the model again if it is the training data), or undo the edit."
            )

    def get_anndata_manager(self, adata, required: bool = False):
        """scvi-tools' lookup, after checking new data's categories against the training ones.

        scvi-tools transfers the setup of a copy of registered data here, and refuses unknown
        batches or labels with a message that names neither the argument nor the fix.
        """
        if adata is not None and self.adata_manager is not None and adata is not self.adata:
            registry = self.adata_manager.registry
            args = registry["setup_args"]
            keys = obs_keys(
                args.get("batch_key"),
                args.get("labels_key"),
                args.get("categorical_covariate_keys"),
            )
            check_query_categories(adata.obs, {}, keys, registry)
        return super().get_anndata_manager(adata, required=required)

    def _validate_anndata(self, adata=None, copy_if_view: bool = True):
        adata = super()._validate_anndata(adata, copy_if_view)
        self._check_data_unchanged(adata)
        return adata

    def _check_training_batches(self) -> None:
        codes = np.asarray(self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()
        sizes = np.bincount(codes.astype(np.int64))
        single = np.flatnonzero(sizes == 1)
        if len(single):
            mapping = self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY)
            names = np.asarray(mapping.categorical_mapping)[single][:5].tolist()
            key = mapping.original_key
            raise ValueError(
                f"`batch_key={key!r}`: batches {names} have a single cell, too few to learn their "
                "batch-specific decoder parameters. Merge them into a related batch or drop "
                "those cells, then set the data up again."
            )

    def train(self, *args, **kwargs):
        """Train with the guards above (see :meth:`mosaicvi.MosaicVI.train`)."""
        self._check_data_unchanged()
        self._check_training_batches()
        keeper = BestWeightsKeeper()
        callbacks = list(kwargs.pop("callbacks", None) or [])
        checkpoint_dir = kwargs.pop("checkpoint_dir", None)
        if checkpoint_dir is not None:
            callbacks.append(ResumeCheckpoint(checkpoint_dir))
        guard = NonFiniteLossGuard(kwargs.pop("check_loss_every_n_steps", None))
        kwargs["callbacks"] = [*callbacks, guard, keeper]
        kwargs = distributed_train_kwargs(kwargs)
        sigint = signal.getsignal(signal.SIGINT)
        try:
            with warnings.catch_warnings():
                # distributed_train_kwargs replaced scvi-tools' early stopping under DDP.
                warnings.filterwarnings("ignore", message="early_stopping was automatically")
                return super().train(*args, **kwargs)
        except SystemExit:
            if not keeper.interrupted:
                raise
            self._finish_interrupted(keeper)
        except ValueError as error:
            # NaN weights make torch refuse the posterior's parameters before any loss exists.
            bad = non_finite_parameters(self.module)
            if not bad:
                raise
            lr = (kwargs.get("plan_kwargs") or {}).get("lr")
            raise NonFiniteLossError(diverged_message(bad, lr)) from error
        finally:
            if sigint is not None and signal.getsignal(signal.SIGINT) is not sigint:
                signal.signal(signal.SIGINT, sigint)

    def _finish_interrupted(self, keeper: BestWeightsKeeper) -> None:
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
            self.history_ = {k: v.copy() for k, v in history.items()}
        self.module.eval()
        self.is_trained_ = True
        warnings.warn(
            f"Training was interrupted; the model keeps the weights of epoch {keeper.best_epoch}, "
            "the best so far. Call `train()` again to continue from them.",
            UserWarning,
            stacklevel=4,
        )
