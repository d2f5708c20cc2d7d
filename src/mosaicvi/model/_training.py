"""``MosaicVI.train``: the defaults and warm-ups of mosaic training, on top of scvi-tools'."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from scvi.model.base import UnsupervisedTrainingMixin

from mosaicvi._constants import METRIC_KEYS
from mosaicvi.model import _options as options
from mosaicvi.model import _safe_training as safe
from mosaicvi.model._distributed import distributed_train_kwargs
from mosaicvi.model._options import default_max_epochs
from mosaicvi.train._guards import BestWeightsKeeper

if TYPE_CHECKING:
    import os

    from mosaicvi import MosaicVI

logger = logging.getLogger(__name__)


def _ends_before_first_validation(
    max_steps: int | None, n_obs: int, train_size: float | None, batch_size: int
) -> bool:
    """Whether ``max_steps`` stops training before the first epoch (and validation) ends."""
    if max_steps is None or max_steps < 0:
        return False
    n_train = math.ceil(n_obs * (0.9 if train_size is None else train_size))
    return max_steps < math.ceil(n_train / batch_size)


def mosaic_train_kwargs(
    n_obs: int,
    max_epochs: int | None,
    lr: float,
    batch_size: int,
    early_stopping: bool,
    early_stopping_patience: int,
    train_size: float | None,
    n_epochs_kl_warmup: int | None,
    adversarial_strength: float,
    n_epochs_adversarial_warmup: int | None,
    n_importance_samples: int,
    plan_kwargs: dict | None,
    trainer_kwargs: dict[str, Any],
    **kwargs,
) -> dict[str, Any]:
    """Keywords of scvi-tools' ``train`` for :meth:`mosaicvi.MosaicVI.train`'s arguments.

    Fills in the default epochs (:func:`default_max_epochs`) and warm-ups (KL: a quarter of the
    epochs, at most 50; adversarial: as the KL), puts the plan's arguments into ``plan_kwargs``
    (whose own entries win), and sets up early stopping on the validation ELBO, off when
    ``max_steps`` ends the fit before the first validation. Sparse minibatches stay sparse;
    ``kwargs`` (``validation_size``, ``datasplitter_kwargs``) are passed on.
    """
    if max_epochs is None:
        max_epochs = default_max_epochs(n_obs)
    if n_epochs_kl_warmup is None:
        n_epochs_kl_warmup = max(1, min(50, max_epochs // 4))
    if n_epochs_adversarial_warmup is None:
        n_epochs_adversarial_warmup = n_epochs_kl_warmup
    plan_kwargs = {
        "lr": lr,
        "n_epochs_kl_warmup": n_epochs_kl_warmup,
        "adversarial_strength": adversarial_strength,
        "n_epochs_adversarial_warmup": n_epochs_adversarial_warmup,
        "n_importance_samples": n_importance_samples,
        **(plan_kwargs or {}),
    }
    trainer_kwargs = dict(trainer_kwargs)
    if early_stopping and _ends_before_first_validation(
        trainer_kwargs.get("max_steps"), n_obs, train_size, batch_size
    ):
        # Lightning's early stopping fails at the end of a fit that never validated.
        logger.info("`max_steps` ends the fit within the first epoch: no early stopping.")
        early_stopping = False
    if early_stopping:
        trainer_kwargs.setdefault("early_stopping_monitor", METRIC_KEYS.ELBO_VALIDATION)
        trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
    return {
        "max_epochs": max_epochs,
        "train_size": train_size,
        "load_sparse_tensor": True,
        "batch_size": batch_size,
        "early_stopping": early_stopping,
        "plan_kwargs": plan_kwargs,
        **kwargs,
        **trainer_kwargs,
    }


def train_model(
    model: MosaicVI,
    max_epochs: int | None,
    lr: float,
    batch_size: int,
    early_stopping: bool,
    early_stopping_patience: int,
    accelerator: str,
    devices: int | list[int] | str,
    train_size: float | None,
    validation_size: float | None,
    n_epochs_kl_warmup: int | None,
    adversarial_strength: float,
    n_epochs_adversarial_warmup: int | None,
    n_importance_samples: int,
    checkpoint_dir: str | os.PathLike | None,
    check_loss_every_n_steps: int | None,
    load_data_on_device: bool | str,
    plan_kwargs: dict | None,
    datasplitter_kwargs: dict | None,
    **trainer_kwargs,
):
    """:meth:`mosaicvi.MosaicVI.train` (whose docstring describes every argument).

    Checks (importance sampling, deprecated keywords, edits since setup, single-cell batches),
    then scvi-tools' training with the guards of :mod:`~mosaicvi.model._safe_training`.
    """
    model.module.check_importance_sampling(
        n_importance_samples, (plan_kwargs or {}).get("importance_gradient", "dreg")
    )
    options.warn_deprecated_plan_kwargs(plan_kwargs)
    safe.check_data_unchanged(model.get_anndata_manager(model.adata))
    safe.check_training_batches(model.adata_manager)
    kwargs = mosaic_train_kwargs(
        model.adata.n_obs,
        max_epochs,
        lr,
        batch_size,
        early_stopping,
        early_stopping_patience,
        train_size,
        n_epochs_kl_warmup,
        adversarial_strength,
        n_epochs_adversarial_warmup,
        n_importance_samples,
        {**model._plan_kwargs, **(plan_kwargs or {})},
        dict(trainer_kwargs, accelerator=accelerator, devices=devices),
        validation_size=validation_size,
        datasplitter_kwargs={
            "load_data_on_device": load_data_on_device,
            **(datasplitter_kwargs or {}),
        },
    )
    keeper = BestWeightsKeeper()
    kwargs["callbacks"] = safe.guard_callbacks(
        kwargs.pop("callbacks", None), checkpoint_dir, check_loss_every_n_steps, keeper
    )
    kwargs = distributed_train_kwargs(kwargs)
    return safe.guarded_fit(
        model,
        lambda: UnsupervisedTrainingMixin.train(model, **kwargs),
        keeper,
        kwargs["plan_kwargs"].get("lr"),
    )
