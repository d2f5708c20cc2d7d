"""Training metrics summed on the device during an epoch and logged once, at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mosaicvi._compat import lightning_logs_this_step

if TYPE_CHECKING:
    from scvi.module.base import LossOutput

_TRAIN = "train"


class EpochMetricsMixin:
    """Training-plan mixin: the training step logs nothing; the epoch's metrics are logged once.

    scvi-tools' training step makes about seven ``self.log`` calls per step (the KL weight,
    ``train_loss``, the ELBO terms, every extra metric), each a few hundred microseconds of
    Python on the host: on a GPU that caps the steps per second whatever the model's size.
    Here each step adds its metrics, weighted by its number of cells, into one tensor on the
    device, and updates the ELBO metric objects; the epoch's weighted means are logged once,
    at its last training step (before validation and the epoch-end callbacks read them), or
    at the end of an epoch cut short by ``max_steps``. The ``history`` keys and values are
    those of per-step logging (Lightning's epoch mean weights each step by its cells, as
    here); under DDP Lightning reduces them across processes as before. Validation logging is
    unchanged (scvi-tools').
    """

    def on_train_epoch_start(self) -> None:
        """Start the epoch's sums."""
        super().on_train_epoch_start()
        self._metric_names: list[str] | None = None
        self._metric_sums: torch.Tensor | None = None
        self._metric_cells = 0

    def training_step(self, batch, batch_idx):
        """scvi-tools' training step, with the metrics summed on the device instead of logged."""
        if "kl_weight" in self.loss_kwargs:
            kl_weight = self.kl_weight
            self.loss_kwargs.update({"kl_weight": kl_weight})
            if lightning_logs_this_step(self.trainer):  # a step value, kept where it is logged
                self.log("kl_weight", kl_weight, on_step=True, on_epoch=False)
        _, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        self._add_step_metrics(loss_output)
        if loss_output.extra_metrics:
            self.prepare_scib_autotune(loss_output.extra_metrics, "training")
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._log_epoch_metrics()
        return loss_output.loss

    def _add_step_metrics(self, loss_output: LossOutput) -> None:
        """Add this step's metrics, times its cells, to the epoch's sums."""
        n_obs = int(loss_output.n_obs_minibatch)
        self.train_metrics[f"elbo_{_TRAIN}"].update(
            reconstruction_loss=loss_output.reconstruction_loss_sum,
            kl_local=loss_output.kl_local_sum,
            kl_global=loss_output.kl_global_sum,
            n_obs_minibatch=n_obs,
        )
        values = {"train_loss": loss_output.loss}
        for key, value in (loss_output.extra_metrics or {}).items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                values[f"{key}_{_TRAIN}"] = value
        if getattr(self, "_metric_names", None) is None:
            self._metric_names = list(values)
            self._metric_sums = None
            self._metric_cells = 0
        step = torch.stack(
            [
                torch.as_tensor(values[name], device=self.device).detach().float()
                for name in self._metric_names
            ]
        )
        step = step * n_obs
        self._metric_sums = step if self._metric_sums is None else self._metric_sums + step
        self._metric_cells += n_obs

    def _log_epoch_metrics(self) -> None:
        """Log the epoch's weighted means and ELBO metrics (once per epoch)."""
        if getattr(self, "_metric_sums", None) is None:
            return
        self.log_dict(
            self.train_metrics,
            on_step=False,
            on_epoch=True,
            batch_size=self._metric_cells,
            sync_dist=self.use_sync_dist,
        )
        means = self._metric_sums / self._metric_cells
        for i, name in enumerate(self._metric_names):
            self.log(
                name,
                means[i],
                on_step=False,
                on_epoch=True,
                prog_bar=name == "train_loss",
                batch_size=self._metric_cells,
                sync_dist=self.use_sync_dist,
            )
        self._metric_names, self._metric_sums, self._metric_cells = None, None, 0

    def on_train_epoch_end(self) -> None:
        """Log the metrics of an epoch that ``max_steps`` ended before its last step."""
        self._log_epoch_metrics()
        super().on_train_epoch_end()
