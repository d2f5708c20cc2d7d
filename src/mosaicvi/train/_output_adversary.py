"""Training of the output discriminators: their own optimiser, a slower rate, a generator warm-up."""

from __future__ import annotations

import torch

_CHECKPOINT_KEY = "output_discriminator_optimizer"


class OutputAdversaryPlanMixin:
    """Training-plan mixin for modules with ``output_discriminators`` (see ``MosaicVAE``).

    The module's loss adds the discriminators' cross-entropy (on detached decoded profiles, so it
    trains only the discriminators) and the decoders' generator term (through frozen
    discriminators, so it trains only the VAE). One backward pass therefore fills both sets of
    gradients; the discriminators' parameters are left out of the main optimiser and stepped by
    their own Adam, at ``output_discriminator_lr_factor`` times the learning rate (``beta1 = 0.5``,
    as usual for GAN discriminators), right after the main step. The generator term is scaled by
    a factor that grows linearly from 0 to 1 over ``n_epochs_output_adversarial_warmup`` epochs
    (default: the KL warm-up), so the decoders first fit the data and the discriminators learn
    what real profiles look like before the decoders are pushed to fool them.

    Parameters
    ----------
    module
        The module (passed on).
    output_discriminator_lr_factor
        Learning rate of the discriminators, relative to ``lr``.
    n_epochs_output_adversarial_warmup
        Epochs over which the generator term ramps up (``None``: ``n_epochs_kl_warmup``, or 0).
    **kwargs
        Passed to the next class (the training plan).
    """

    def __init__(
        self,
        module,
        *,
        output_discriminator_lr_factor: float = 0.5,
        n_epochs_output_adversarial_warmup: int | None = None,
        **kwargs,
    ):
        super().__init__(module, **kwargs)
        if output_discriminator_lr_factor <= 0:
            raise ValueError(
                "`output_discriminator_lr_factor` must be > 0, got "
                f"{output_discriminator_lr_factor}."
            )
        self.output_discriminator_lr_factor = output_discriminator_lr_factor
        if n_epochs_output_adversarial_warmup is None:
            n_epochs_output_adversarial_warmup = self.n_epochs_kl_warmup or 0
        self.n_epochs_output_adversarial_warmup = n_epochs_output_adversarial_warmup
        self.output_discriminator_optimizer: torch.optim.Optimizer | None = None
        self._pending_discriminator_state: dict | None = None

    @property
    def output_discriminators(self) -> torch.nn.Module | None:
        """The module's output discriminators (``None`` when it has none)."""
        return getattr(self.module, "output_discriminators", None)

    @property
    def current_output_adversarial_scale(self) -> float:
        """Factor of the generator term at the current epoch (0 -> 1 over the warm-up)."""
        if self.n_epochs_output_adversarial_warmup <= 0:
            return 1.0
        return min(1.0, self.current_epoch / self.n_epochs_output_adversarial_warmup)

    def configure_optimizers(self):
        """The plan's optimiser without the discriminators, plus their own Adam."""
        discriminators = self.output_discriminators
        if discriminators is None:
            return super().configure_optimizers()
        params = [p for p in discriminators.parameters() if p.requires_grad]
        for p in params:  # the plan's optimiser takes the parameters that require a gradient
            p.requires_grad_(False)
        try:
            config = super().configure_optimizers()
        finally:
            for p in params:
                p.requires_grad_(True)
        self.output_discriminator_optimizer = torch.optim.Adam(
            params,
            lr=self.lr * self.output_discriminator_lr_factor,
            betas=(0.5, 0.999),
            eps=self.eps,
        )
        if self._pending_discriminator_state is not None:  # resuming from a checkpoint
            self.output_discriminator_optimizer.load_state_dict(self._pending_discriminator_state)
            self._pending_discriminator_state = None
        return config

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Keep the discriminators' optimiser state in Lightning checkpoints (resume)."""
        super().on_save_checkpoint(checkpoint)
        if self.output_discriminator_optimizer is not None:
            checkpoint[_CHECKPOINT_KEY] = self.output_discriminator_optimizer.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore it when the optimisers are configured (Lightning restores the plan first)."""
        super().on_load_checkpoint(checkpoint)
        self._pending_discriminator_state = checkpoint.get(_CHECKPOINT_KEY)

    def training_step(self, batch, batch_idx):
        """Training step with the current generator scale."""
        if self.output_discriminators is not None:
            self.loss_kwargs["output_adversarial_scale"] = self.current_output_adversarial_scale
        return super().training_step(batch, batch_idx)

    def optimizer_step(self, *args, **kwargs):
        """The plan's step (forward, backward, update), then the discriminators' update."""
        super().optimizer_step(*args, **kwargs)
        optimizer = self.output_discriminator_optimizer
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
