"""``MosaicVI.train``: the defaults and warm-ups of mosaic training, on top of scvi-tools'."""

from __future__ import annotations

import logging
import math

from mosaicvi.model._options import default_max_epochs

logger = logging.getLogger(__name__)


def _ends_before_first_validation(
    max_steps: int | None, n_obs: int, train_size: float | None, batch_size: int
) -> bool:
    """Whether ``max_steps`` stops training before the first epoch (and validation) ends."""
    if max_steps is None or max_steps < 0:
        return False
    n_train = math.ceil(n_obs * (0.9 if train_size is None else train_size))
    return max_steps < math.ceil(n_train / batch_size)


class MosaicTrainingMixin:
    """:meth:`train` of :class:`~mosaicvi.MosaicVI`: epochs, warm-ups and early stopping.

    Sits before :class:`~mosaicvi.model._safe_training.SafeTrainingMixin` and scvi-tools'
    ``UnsupervisedTrainingMixin`` in the model's bases; their ``train`` does the rest.
    """

    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 2e-3,
        batch_size: int = 128,
        early_stopping: bool = True,
        early_stopping_patience: int = 20,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float | None = None,
        validation_size: float | None = None,
        n_epochs_kl_warmup: int | None = None,
        adversarial_strength: float = 5.0,
        n_epochs_adversarial_warmup: int | None = None,
        n_importance_samples: int = 1,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train the model (on the GPU when one is available), with a progress bar.

        Parameters
        ----------
        max_epochs
            Passes through the data; default ~1.2 million cell visits, between 20 and 400 epochs
            (120 for 10,000 cells), with early stopping on the validation ELBO.
        lr
            Learning rate (Adam).
        batch_size
            Minibatch size.
        early_stopping
            Stop when the validation ELBO has not improved for ``early_stopping_patience`` epochs.
            Off when ``max_steps`` (a trainer keyword) ends training within the first epoch,
            before any validation.
        early_stopping_patience
            Epochs without improvement before stopping.
        accelerator
            ``"auto"``, ``"cpu"``, ``"gpu"``, ... (Lightning).
        devices
            Devices to use (Lightning): an int, a list of indices, ``-1`` or ``"auto"``.
        train_size
            Fraction of cells used for training (default 0.9).
        validation_size
            Fraction of cells for validation (default: the rest).
        n_epochs_kl_warmup
            Epochs over which the KL weight goes from 0 to 1 (default: a quarter of ``max_epochs``,
            at most 50).
        adversarial_strength
            Strength of the batch-adversarial gradient on the encoder (0 disables its effect).
        n_epochs_adversarial_warmup
            Epochs over which the adversarial strength ramps up (default: as the KL warm-up).
        n_importance_samples
            ``K > 1`` trains on the importance-weighted bound with ``K`` draws per posterior
            component (IWAE, stratified over the experts of ``fusion="moe"``/``"mopoe"`` as
            MMVAE) with doubly reparameterised (DReG) gradients; ``plan_kwargs={"importance_gradient":
            "iwae"}`` uses the plain IWAE gradient. Valid for every fusion, with ``prior="normal"``
            or ``"modality"``. ``1`` (default): the ELBO. The logged ELBO stays the ELBO.
        plan_kwargs
            Passed to :class:`~mosaicvi.train.MosaicTrainingPlan`; override the arguments above.
        datasplitter_kwargs
            Passed to :class:`~mosaicvi.train.SparseDataSplitter`.
        **trainer_kwargs
            Passed to :class:`scvi.train.Trainer` (e.g. ``check_val_every_n_epoch``).
        """
        self.module.check_importance_sampling(
            n_importance_samples, (plan_kwargs or {}).get("importance_gradient", "dreg")
        )
        n_obs = self.adata.n_obs
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
        if early_stopping and _ends_before_first_validation(
            trainer_kwargs.get("max_steps"), n_obs, train_size, batch_size
        ):
            # Lightning's early stopping fails at the end of a fit that never validated.
            logger.info("`max_steps` ends the fit within the first epoch: no early stopping.")
            early_stopping = False
        if early_stopping:
            trainer_kwargs.setdefault("early_stopping_monitor", "elbo_validation")
            trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
        return super().train(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            train_size=train_size,
            validation_size=validation_size,
            load_sparse_tensor=True,
            batch_size=batch_size,
            early_stopping=early_stopping,
            plan_kwargs=plan_kwargs,
            datasplitter_kwargs=datasplitter_kwargs,
            **trainer_kwargs,
        )
