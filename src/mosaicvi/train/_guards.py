"""Training guards: stop on a non-finite loss with a diagnosis, keep the best weights so far."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from lightning.pytorch.callbacks import Callback

from mosaicvi._constants import METRIC_KEYS

if TYPE_CHECKING:
    import lightning.pytorch as pl


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss (the message names the term and likely causes)."""


class NonFiniteLossGuard(Callback):
    """Stop training at the first minibatch whose loss is NaN or infinite.

    Weights are scanned once, when training ends: a scan per step cost about a third of the
    training time on the CPU. Weights that turn non-finite make the next step's loss non-finite, or make
    torch refuse a Normal with NaN parameters, which :class:`~mosaicvi.MosaicVI` turns into this
    error too.

    The minibatch is evaluated once more without gradients to find which loss term is not
    finite (each modality's reconstruction, the KL, the discriminator and graph terms), and the
    error names it together with the likely cause: weights that already diverged (learning rate
    too high) or input values that overflow the likelihood (data that are not raw counts).

    Reading the check's result on the host waits for the device. On the CPU that costs nothing
    (its work is synchronous) and every step is checked at once; on a GPU the per-step flags
    stay on the device and are read every ``check_every_n_steps`` steps (default 50) and at
    the end of every epoch, so the GPU never idles for the check. The first non-finite step
    is still found and its minibatch diagnosed (the weights may have been updated since).

    Parameters
    ----------
    check_every_n_steps
        Steps between reads of the flags; ``None``: 1 on the CPU, 50 on other devices.
    """

    def __init__(self, check_every_n_steps: int | None = None):
        self.check_every_n_steps = check_every_n_steps
        self._pending: list[tuple[int, dict, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Check the loss of the step that just ran (a scalar: cheap, unlike a weight scan)."""
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        every = self.check_every_n_steps or (1 if loss.device.type == "cpu" else 50)
        if every <= 1:
            if not _all_ranks(trainer, bool(torch.isfinite(loss).all())):
                raise NonFiniteLossError(
                    diagnose(pl_module, batch, trainer.current_epoch, batch_idx)
                )
            return
        self._pending.append((batch_idx, batch, torch.isfinite(loss.detach()).all()))
        if len(self._pending) >= every:
            self._check_pending(trainer, pl_module, every)

    def _check_pending(self, trainer, pl_module, every: int | None = None) -> None:
        """Read the flags of the steps since the last read (one device sync); raise if any."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        finite = torch.stack([flag for _, _, flag in pending]).cpu()
        if _all_ranks(trainer, bool(finite.all())):
            return
        if bool(finite.all()):  # another process saw it: stop here too, naming its last step
            finite[-1] = False
        batch_idx, batch, _ = pending[int(torch.nonzero(~finite)[0])]
        every = every or self.check_every_n_steps or 50
        raise NonFiniteLossError(
            diagnose(pl_module, batch, trainer.current_epoch, batch_idx)
            + f" (The loss was read every {every} steps on this device; "
            "`train(check_loss_every_n_steps=1)` diagnoses the failing step before any update.)"
        )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Read the flags still pending at the end of the epoch."""
        self._check_pending(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        """Check the weights once at the end (the last update may have diverged)."""
        self._check_pending(trainer, pl_module)
        bad = non_finite_parameters(pl_module.module)
        if bad:
            raise NonFiniteLossError(diverged_message(bad, getattr(pl_module, "lr", None)))


def _all_ranks(trainer, finite: bool) -> bool:
    """``finite`` on every process of a distributed run (so that all of them stop together)."""
    if getattr(trainer, "world_size", 1) > 1:
        return bool(trainer.strategy.reduce_boolean_decision(finite, all=True))
    return finite


def diverged_message(bad_parameters: list[str], lr: float | None) -> str:
    """Message for weights that became non-finite while the loss was still finite."""
    return (
        f"Training stopped: weights became non-finite (e.g. {bad_parameters[:2]}). "
        f"{_LR_ADVICE.format(lr=lr)} The model was not marked as trained."
    )


_LR_ADVICE = "The updates diverged: lower the learning rate (`lr`, now {lr}), e.g. by 10x."


def non_finite_parameters(module: torch.nn.Module) -> list[str]:
    """Names of the parameters holding NaN or infinite values (a pass over all weights)."""
    named = list(module.named_parameters())
    if not named:
        return []
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).cpu().numpy()
    return [name for (name, _), ok in zip(named, finite, strict=True) if not ok]


def diagnose(pl_module, batch: dict, epoch: int, batch_idx: int) -> str:
    """Message naming the non-finite loss terms of ``batch`` and the likely cause."""
    bad_parameters = non_finite_parameters(pl_module.module)
    with torch.no_grad():
        _, _, loss_output = pl_module.forward(batch, loss_kwargs=pl_module.loss_kwargs)
    terms = _loss_terms(loss_output)
    bad_terms = [name for name, value in terms.items() if not math.isfinite(value)]
    where = f"Training stopped at epoch {epoch}, minibatch {batch_idx}: the loss is not finite"
    named = f" ({', '.join(bad_terms)})" if bad_terms else ""
    lr = getattr(pl_module, "lr", None)
    if bad_parameters:
        cause = f"The weights are non-finite (e.g. {bad_parameters[:2]}). " + _LR_ADVICE.format(
            lr=lr
        )
    else:
        cause = (
            "The weights are finite, so the input most likely overflows the likelihood: check "
            "that the modalities named hold raw counts (not normalised or scaled values, no "
            "extreme outliers) and choose the raw-count layer with `layers=`. A learning rate "
            f"that is too high (`lr`, now {lr}) can also cause this."
        )
    return f"{where}{named}. {cause} The model was not marked as trained."


def _loss_terms(loss_output) -> dict[str, float]:
    """Each term of an scvi-tools LossOutput as a float (per modality where it is a dict)."""
    terms = {"loss": loss_output.loss}
    for kind in ("reconstruction_loss", "kl_local", "kl_global"):
        value = getattr(loss_output, kind, None)
        if isinstance(value, dict):
            terms.update({f"{kind}[{k!r}]": v for k, v in value.items()})
        elif value is not None:
            terms[kind] = value
    terms.update(loss_output.extra_metrics or {})
    return {
        name: float(torch.as_tensor(value, dtype=torch.float64).sum())
        for name, value in terms.items()
        if isinstance(value, torch.Tensor | float | int)
    }


class BestWeightsKeeper(Callback):
    """Keep a copy of the weights of the best epoch so far; restore them if training is interrupted.

    The monitored value is the validation ELBO when validation runs, else the training ELBO.
    On ``KeyboardInterrupt`` the module gets the best weights back and :attr:`interrupted` is set,
    so the caller can finish the model as trained.
    """

    def __init__(
        self, monitors: tuple[str, ...] = (METRIC_KEYS.ELBO_VALIDATION, METRIC_KEYS.ELBO_TRAIN)
    ):
        self.monitors = monitors
        self.best_value = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.interrupted = False
        self.trainer: pl.Trainer | None = None

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Copy the weights when the monitored ELBO improved."""
        self.trainer = trainer
        for name in self.monitors:
            value = trainer.callback_metrics.get(name)
            if value is None:
                continue
            value = float(value)
            if math.isfinite(value) and value < self.best_value:
                self.best_value, self.best_epoch = value, trainer.current_epoch
                self._copy_state(pl_module.module)
            return

    def _copy_state(self, module: torch.nn.Module) -> None:
        """Copy the weights into buffers allocated once (a copy costs about one step)."""
        state = module.state_dict()
        if self.best_state is None or self.best_state.keys() != state.keys():
            self.best_state = {k: v.detach().clone() for k, v in state.items()}
            return
        for name, value in state.items():
            self.best_state[name].copy_(value)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        """On ``KeyboardInterrupt``, put the best weights back into the module."""
        self.trainer = trainer
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted = True
            if self.best_state is not None:
                pl_module.module.load_state_dict(self.best_state)


class ResumeCheckpoint(Callback):
    """Write ``last.ckpt`` (weights, optimiser and loop state) to ``dirpath`` after every epoch.

    ``model.train(ckpt_path=f"{dirpath}/last.ckpt")`` resumes from it. Lightning reads
    checkpoints with ``torch.load``'s default (``weights_only``); only resume from checkpoints you
    wrote.
    """

    def __init__(self, dirpath: str | os.PathLike):
        self.path = Path(dirpath) / "last.ckpt"

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Overwrite the checkpoint with the state at the end of this epoch."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.path)
