"""Training robustness: non-finite loss, interrupts, resuming, edits after setup, reproducibility."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import scipy.sparse as sp
import scvi
import torch
from lightning.pytorch.callbacks import Callback

import mosaicvi


def tiny_model(mdata, **kwargs) -> mosaicvi.MosaicVI:
    return mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16, **kwargs)


@pytest.fixture
def model(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    return tiny_model(synthetic_mosaic)


class InterruptAt(Callback):
    """Raise KeyboardInterrupt when ``epoch`` starts; keep a copy of the weights at each epoch end.

    With ``spoil_epoch``, the decoder weights are scaled up at the start of that epoch, so that
    its ELBO is worse than the epoch before (the best weights are then not the last ones).
    """

    def __init__(self, epoch: int, spoil_epoch: int | None = None):
        self.epoch = epoch
        self.spoil_epoch = spoil_epoch
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt
        if trainer.current_epoch == self.spoil_epoch:
            with torch.no_grad():
                for p in pl_module.module.decoders.parameters():
                    p.mul_(30.0)

    def on_train_epoch_end(self, trainer, pl_module):
        self.states[trainer.current_epoch] = {
            k: v.detach().clone() for k, v in pl_module.module.state_dict().items()
        }


def quiet(**kwargs) -> dict:
    return {
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "batch_size": 128,
        **kwargs,
    }


def test_keyboard_interrupt_keeps_best_weights_and_a_usable_model(model):
    handler = signal.getsignal(signal.SIGINT)
    interrupt = InterruptAt(epoch=3, spoil_epoch=2)
    with pytest.warns(UserWarning, match="interrupted; the model keeps the weights of epoch"):
        model.train(
            max_epochs=10,
            early_stopping=True,
            early_stopping_patience=50,
            callbacks=[interrupt],
            **quiet(),
        )
    assert signal.getsignal(signal.SIGINT) is handler  # Lightning's SIG_IGN is undone
    assert model.is_trained
    elbo = model.history["elbo_validation"].to_numpy(dtype=float).ravel()
    assert len(elbo) == 3
    best = int(np.argmin(elbo))
    assert best < 2  # the spoiled last epoch is not the best: its weights must not be kept
    for name, value in model.module.state_dict().items():
        torch.testing.assert_close(value, interrupt.states[best][name], msg=name)
    latent = model.get_latent_representation()
    assert latent.shape == (model.adata.n_obs, 4)
    assert np.isfinite(latent).all()


def test_interrupt_before_first_epoch_leaves_model_untrained(model):
    with pytest.warns(UserWarning, match="before the first epoch ended"):
        model.train(max_epochs=3, early_stopping=False, callbacks=[InterruptAt(0)], **quiet())
    assert not model.is_trained
    with pytest.raises(RuntimeError, match="train"):
        model.get_latent_representation()


def test_overflowing_counts_stop_training_naming_the_term(synthetic_mosaic):
    rna = synthetic_mosaic.mod["rna"]
    counts = rna.X.tolil()
    counts[5, 3] = 3e38  # an integer-valued float32, but no count: the NB log-likelihood overflows
    rna.X = sp.csr_matrix(counts, dtype=np.float32)
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = tiny_model(synthetic_mosaic)
    with pytest.raises(FloatingPointError, match=r"reconstruction_loss\['rna'\].*raw counts"):
        model.train(max_epochs=2, early_stopping=False, **quiet())
    assert not model.is_trained


class DivergeAfterFirstStep(Callback):
    """Simulate an update that blew up: NaN in one weight after the first optimiser step."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with torch.no_grad():
            next(pl_module.module.parameters()).view(-1)[0] = float("nan")


def test_diverged_weights_blame_the_learning_rate(model):
    with pytest.raises(
        FloatingPointError, match=r"weights became non-finite.*lower the learning rate"
    ):
        model.train(
            max_epochs=1, early_stopping=False, callbacks=[DivergeAfterFirstStep()], **quiet()
        )
    assert not model.is_trained


def test_train_resumes_from_a_checkpoint(synthetic_mosaic, tmp_path):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    first = tiny_model(synthetic_mosaic)
    first.train(max_epochs=2, early_stopping=False, checkpoint_dir=tmp_path, **quiet())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    trained = {k: v.clone() for k, v in first.module.state_dict().items()}

    class RecordStart(Callback):
        def on_train_start(self, trainer, pl_module):
            self.epoch = trainer.current_epoch
            self.state = {k: v.clone() for k, v in pl_module.module.state_dict().items()}

    start = RecordStart()
    second = tiny_model(synthetic_mosaic)
    second.train(
        max_epochs=4,
        early_stopping=False,
        callbacks=[start],
        ckpt_path=str(tmp_path / "last.ckpt"),
        **quiet(),
    )
    assert start.epoch == 2
    for name, value in trained.items():
        torch.testing.assert_close(start.state[name], value, msg=name)
    assert len(second.history["elbo_train"]) == 2  # epochs 2 and 3 only


def test_single_cell_batch_is_refused_before_training(synthetic_mosaic, fingerprint):
    for m in ("rna", "atac", "adt"):
        obs = synthetic_mosaic.mod[m].obs
        obs.loc[obs.index == "b3_cell0", "batch"] = "lonely"
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = tiny_model(synthetic_mosaic)
    before = fingerprint(synthetic_mosaic)
    with pytest.raises(ValueError, match=r"batch_key='batch'.*\['lonely'\].*single cell.*Merge"):
        model.train(max_epochs=1, **quiet())
    assert fingerprint(synthetic_mosaic) == before


@pytest.mark.parametrize("edit", ["counts", "cells", "features"])
def test_edits_the_model_does_not_read_leave_training_on_the_setup_counts(model, edit):
    """Setup copied the counts: replacing X, cells or feature names of a modality after it
    changes nothing the model reads, so training runs on the counts of setup."""
    mdata = model.adata
    copy = mdata.obsm["_mosaicvi_x_rna"].copy()
    rna = mdata.mod["rna"]
    if edit == "counts":
        rna.X = rna.X * 2
    elif edit == "cells":
        mdata.mod["rna"] = rna[1:].copy()
    else:
        rna.var_names = [f"g{i}" for i in range(rna.n_vars)]
    model.train(max_epochs=1, early_stopping=False, **quiet())
    assert (mdata.obsm["_mosaicvi_x_rna"] != copy).nnz == 0


def test_in_place_edit_of_shared_counts_is_detected_before_training(model):
    model.adata.mod["rna"].X.data *= 2  # the aligned copy shares these arrays
    with pytest.raises(
        ValueError,
        match=r"changed after it was set up \(mdata.obsm\['_mosaicvi_x_rna'\]: count values",
    ):
        model.train(max_epochs=1, **quiet())


def test_edit_of_what_the_model_reads_is_detected_before_outputs(model):
    model.train(max_epochs=1, early_stopping=False, **quiet())
    model.get_latent_representation()
    mdata = model.adata
    mdata.obsm["_mosaicvi_x_atac"] = mdata.obsm["_mosaicvi_x_atac"] * 0
    with pytest.raises(
        ValueError, match=r"mdata.obsm\['_mosaicvi_x_atac'\]: count values changed.*setup_mudata"
    ):
        model.get_latent_representation()


def test_same_seed_gives_identical_latents(synthetic_mosaic):
    latents = []
    for _ in range(2):
        scvi.settings.seed = 7
        data = synthetic_mosaic.copy()
        mosaicvi.MosaicVI.setup_mudata(data, batch_key="batch")
        model = tiny_model(data)
        model.train(max_epochs=1, early_stopping=False, **quiet())
        latents.append(model.get_latent_representation())
    np.testing.assert_array_equal(latents[0], latents[1])
    scvi.settings.seed = 8
    data = synthetic_mosaic.copy()
    mosaicvi.MosaicVI.setup_mudata(data, batch_key="batch")
    other = tiny_model(data)
    other.train(max_epochs=1, early_stopping=False, **quiet())
    assert not np.allclose(other.get_latent_representation(), latents[0])


class RecordModuleMode(Callback):
    """Record whether the module was in training mode at each training step."""

    def __init__(self):
        self.modes: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes.append(pl_module.module.training)


def test_second_train_call_trains_in_training_mode(model, tmp_path):
    """scvi-tools leaves the module in eval mode after training and loading; train() undoes it."""
    model.train(**quiet(max_epochs=1, max_steps=2, early_stopping=False))
    assert not model.module.training  # evaluation mode for the outputs
    recorder = RecordModuleMode()
    model.train(**quiet(max_epochs=1, max_steps=2, early_stopping=False, callbacks=[recorder]))
    assert recorder.modes == [True, True]
    model.save(tmp_path / "saved")
    loaded = mosaicvi.MosaicVI.load(tmp_path / "saved", adata=model.adata)
    assert not loaded.module.training
    recorder = RecordModuleMode()
    loaded.train(**quiet(max_epochs=1, max_steps=1, early_stopping=False, callbacks=[recorder]))
    assert recorder.modes == [True]


def test_max_steps_within_the_first_epoch_with_default_early_stopping(model):
    """Early stopping (the default) must not fail a fit that ends before any validation."""
    recorder = RecordModuleMode()
    model.train(**quiet(max_steps=2, callbacks=[recorder]))
    assert len(recorder.modes) == 2
    assert len(model.history["elbo_train"]) == 1
