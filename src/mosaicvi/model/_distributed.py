"""Training arguments for Lightning's DDP: several GPUs (or CPU processes), one or more nodes.

scvi-tools turns early stopping off under DDP; MosaicVI keeps it by adding Lightning's own
:class:`~lightning.pytorch.callbacks.EarlyStopping`, whose stop decision is shared by all
processes. The data splitters shard minibatches per process (``distributed_sampler``); with
device-resident data each process holds only its shard of the cells
(:mod:`mosaicvi.train._sharding`). The presence masks travel with each minibatch and the
guidance graph is a set of module buffers, which DDP broadcasts from rank 0 when training starts.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.strategies import DDPStrategy

from mosaicvi._constants import METRIC_KEYS

#: Trainer arguments of scvi-tools' early stopping, and their defaults there.
_EARLY_STOPPING_DEFAULTS = {
    "early_stopping_monitor": METRIC_KEYS.ELBO_VALIDATION,
    "early_stopping_min_delta": 0.0,
    "early_stopping_patience": 45,
    "early_stopping_mode": "min",
}


def is_distributed(strategy: Any) -> bool:
    """Whether ``strategy`` (a name or a Lightning strategy) is one of the DDP strategies."""
    if isinstance(strategy, str):
        return "ddp" in strategy
    return isinstance(strategy, DDPStrategy)


def distributed_train_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Adapt ``train()``'s keyword arguments for DDP (unchanged without a DDP strategy).

    - ``strategy="ddp"`` becomes ``"ddp_find_unused_parameters_true"``: a minibatch in which no
      cell measured some modality leaves that modality's decoder without a gradient, which plain
      DDP refuses.
    - Validation runs under ``no_grad`` rather than inference mode (``inference_mode=False``).
    - ``early_stopping=True`` becomes a Lightning ``EarlyStopping`` callback with the same
      monitor, patience, minimum change and mode, validated every epoch.
    """
    strategy = kwargs.get("strategy")
    if not is_distributed(strategy):
        return kwargs
    kwargs = dict(kwargs)
    # Validation metrics are reduced across processes when callbacks read them, in place: not
    # possible on tensors created in inference mode (validation then runs under no_grad).
    kwargs.setdefault("inference_mode", False)
    if strategy == "ddp":
        kwargs["strategy"] = "ddp_find_unused_parameters_true"
    settings = {k: kwargs.pop(k, v) for k, v in _EARLY_STOPPING_DEFAULTS.items()}
    kwargs.pop("early_stopping_warmup_epochs", None)
    if kwargs.get("early_stopping"):
        stopper = EarlyStopping(
            monitor=settings["early_stopping_monitor"],
            min_delta=settings["early_stopping_min_delta"],
            patience=settings["early_stopping_patience"],
            mode=settings["early_stopping_mode"],
        )
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), stopper]
        kwargs.setdefault("check_val_every_n_epoch", 1)
    kwargs["early_stopping"] = False
    return kwargs
