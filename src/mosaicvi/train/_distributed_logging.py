"""Metric logging that Lightning's DDP can reduce across processes."""

from __future__ import annotations

import torch


class DistributedLoggingMixin:
    """Training-plan mixin: under DDP, log the metrics under ``no_grad`` instead of inference mode.

    scvi-tools' ``compute_and_log_metrics`` runs in ``torch.inference_mode``, so the values it
    logs are inference tensors; under DDP, Lightning reduces them across processes in place at
    the end of each epoch, which torch refuses outside inference mode (scvi-tools therefore turns
    validation and early stopping off under DDP). Without DDP nothing changes.
    """

    def compute_and_log_metrics(self, loss_output, metrics, mode):
        """scvi-tools' logging; under DDP without inference mode (values are the same)."""
        parent = super().compute_and_log_metrics
        if not self.use_sync_dist:
            return parent(loss_output, metrics, mode)
        undecorated = getattr(parent, "__wrapped__", None)
        if undecorated is None:  # pragma: no cover - a future scvi-tools without the decorator
            return parent(loss_output, metrics, mode)
        with torch.no_grad():
            return undecorated(self, loss_output, metrics, mode)
