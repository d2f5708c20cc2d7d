"""The non-finite loss check read every N steps (the GPU mode, forced here on the CPU)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import scipy.sparse as sp
from lightning.pytorch.callbacks import Callback

import mosaicvi


def _tiny(mdata) -> mosaicvi.MosaicVI:
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    return mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16)


def _quiet(**kwargs) -> dict:
    return {"accelerator": "cpu", "enable_progress_bar": False, "early_stopping": False, **kwargs}


class CountSteps(Callback):
    def __init__(self):
        self.steps = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps += 1


def test_interval_check_trains_normally(synthetic_mosaic):
    model = _tiny(synthetic_mosaic)
    model.train(max_epochs=2, batch_size=32, check_loss_every_n_steps=4, **_quiet())
    assert model.is_trained
    assert len(model.history["elbo_train"]) == 2


@pytest.mark.parametrize("every", [3, 1000])
def test_interval_check_still_stops_on_a_non_finite_loss(synthetic_mosaic, every):
    rna = synthetic_mosaic.mod["rna"]
    counts = rna.X.tolil()
    counts[5, 3] = 3e38  # overflows the NB log-likelihood of the minibatch holding cell 5
    rna.X = sp.csr_matrix(counts, dtype=np.float32)
    model = _tiny(synthetic_mosaic)
    steps = CountSteps()
    with pytest.raises(
        FloatingPointError, match=rf"minibatch \d+.*read every {every} steps"
    ) as info:
        model.train(
            max_epochs=3,
            batch_size=32,
            check_loss_every_n_steps=every,
            callbacks=[steps],
            **_quiet(),
        )
    assert not model.is_trained
    failing = int(re.search(r"epoch 0, minibatch (\d+)", str(info.value)).group(1))
    steps_per_epoch = -(-int(0.9 * synthetic_mosaic.n_obs) // 32)
    # Found at the next read: within ``every`` steps of the failing one, or at the epoch's end.
    assert failing < steps.steps <= min(failing + every, steps_per_epoch)
