"""Device-resident training data (``train(load_data_on_device=True)``), checked on the CPU.

The resident path must draw the same minibatches as scvi-tools' loader for a fixed seed (same
shuffle, split and labelled sampler) and so give the same losses; validation, early stopping
and labelled sampling must work with it. Two-process DDP with it is in ``test_ddp.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scvi
import torch
from lightning.pytorch.callbacks import Callback
from scvi.train import TrainingPlan

import mosaicvi
from mosaicvi.train._data_splitter import SparseDataSplitter
from mosaicvi.train._device_data import (
    DeviceResidentData,
    DeviceResidentLoader,
    resident_nbytes,
)
from mosaicvi.train._epoch_metrics import EpochMetricsMixin


class RecordBatches(Callback):
    """Keep every training minibatch (dense copies) and the loss of each step."""

    def __init__(self):
        self.batches: list[dict[str, np.ndarray]] = []
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.batches.append(
            {
                key: (value.to_dense() if value.layout == torch.sparse_csr else value).numpy()
                for key, value in batch.items()
            }
        )
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def _labelled(mdata):
    for adata in mdata.mod.values():
        hidden = adata.obs_names.str.endswith(("0", "3", "6"))
        adata.obs["label"] = np.where(hidden, "unknown", adata.obs["cell_type"].astype(str))
    return {"labels_key": "label", "unlabeled_category": "unknown"}


def _train(mdata, on_device: bool, labelled: bool, **kwargs):
    setup = {"batch_key": "batch", **(_labelled(mdata) if labelled else {})}
    mosaicvi.MosaicVI.setup_mudata(mdata, **setup)
    scvi.settings.seed = 0
    model = mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16)
    record = RecordBatches()
    kwargs.setdefault("max_epochs", 2)
    model.train(
        batch_size=64,
        accelerator="cpu",
        load_data_on_device=on_device,
        callbacks=[record],
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
    return model, record


@pytest.mark.parametrize("labelled", [False, True], ids=["shuffled", "labelled"])
def test_resident_path_draws_the_reference_minibatches(synthetic_mosaic_factory, labelled):
    reference, ref = _train(synthetic_mosaic_factory(), False, labelled, early_stopping=False)
    resident, res = _train(synthetic_mosaic_factory(), True, labelled, early_stopping=False)
    assert len(res.batches) == len(ref.batches) >= 4
    for got, want in zip(res.batches, ref.batches, strict=True):
        assert got.keys() == want.keys()
        for key in want:
            assert got[key].dtype == want[key].dtype, key
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    # Same minibatches, same random stream: the same losses, step by step and per epoch.
    np.testing.assert_allclose(res.losses, ref.losses, rtol=1e-5)
    np.testing.assert_array_equal(resident.train_indices, reference.train_indices)
    np.testing.assert_array_equal(resident.validation_indices, reference.validation_indices)
    assert resident.history.keys() == reference.history.keys()
    for key, values in reference.history.items():
        np.testing.assert_allclose(
            resident.history[key].to_numpy(float), values.to_numpy(float), rtol=1e-5, err_msg=key
        )


def test_resident_path_validates_and_stops_early(synthetic_mosaic_factory):
    model, _ = _train(
        synthetic_mosaic_factory(),
        True,
        False,
        max_epochs=20,
        early_stopping=True,
        early_stopping_patience=2,
        early_stopping_min_delta=1e9,  # never "improves": stops after the patience
    )
    assert len(model.history["elbo_validation"]) == 3
    assert np.isfinite(model.history["elbo_validation"].to_numpy(float)).all()
    assert np.isfinite(model.get_latent_representation()).all()


def test_gather_matches_scipy_rows_in_any_order(synthetic_mosaic_factory):
    mdata = synthetic_mosaic_factory()
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16)
    manager = model.adata_manager
    data = DeviceResidentData(manager, "cpu")
    rows = np.array([399, 0, 5, 5, 250, 101])  # unsorted, a repeat, a zero row of a modality
    batch = data.gather(
        torch.as_tensor(rows),
        {k: v[0] for k, v in data.minibatch_nnz(rows, np.array([0])).items()},
    )
    for key in ("x_rna", "x_atac", "x_adt"):
        want = manager.get_from_registry(key)[rows].toarray()
        np.testing.assert_array_equal(batch[key].to_dense().numpy(), want)
    np.testing.assert_array_equal(
        batch["batch"].numpy(), np.asarray(manager.get_from_registry("batch"))[rows]
    )


def test_splitter_keeps_the_reference_loader_unless_asked(synthetic_mosaic_factory):
    mdata = synthetic_mosaic_factory()
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16)
    for setting, resident in (("auto", False), (False, False), (True, True)):
        splitter = SparseDataSplitter(
            model.adata_manager, load_data_on_device=setting, load_sparse_tensor=True
        )
        splitter.setup()
        loader = splitter.train_dataloader()
        assert isinstance(loader, DeviceResidentLoader) is resident  # "auto": never on the CPU
    with pytest.raises(ValueError, match="load_data_on_device"):
        SparseDataSplitter(model.adata_manager, load_data_on_device="yes")


def test_epoch_logging_gives_the_history_of_per_step_logging(
    synthetic_mosaic_factory, monkeypatch
):
    kwargs = {"early_stopping": False, "max_epochs": 10}  # 60 steps: one kl_weight log (every 50)
    epoch_logged, _ = _train(synthetic_mosaic_factory(), False, False, **kwargs)
    # scvi-tools' training step: every metric logged at every step, Lightning's epoch means.
    monkeypatch.setattr(
        EpochMetricsMixin,
        "training_step",
        lambda self, b, i: TrainingPlan.training_step(self, b, i),
    )
    step_logged, _ = _train(synthetic_mosaic_factory(), False, False, **kwargs)
    assert epoch_logged.history.keys() == step_logged.history.keys()
    assert {"train_loss", "elbo_train", "discriminator_loss_train", "kl_weight"} <= set(
        step_logged.history
    )
    for key, values in step_logged.history.items():
        np.testing.assert_allclose(
            epoch_logged.history[key].to_numpy(float),
            values.to_numpy(float),
            rtol=1e-5,
            err_msg=key,
        )


def test_bf16_autocast_trains_finite(synthetic_mosaic_factory):
    # ``precision`` goes through to Lightning: bf16 autocast (here on the CPU), weights in fp32.
    model, record = _train(
        synthetic_mosaic_factory(), True, False, early_stopping=False, precision="bf16-mixed"
    )
    assert model.trainer.precision == "bf16-mixed"
    assert np.isfinite(record.losses).all()
    assert np.isfinite(model.history["elbo_train"].to_numpy(float)).all()
    assert all(p.dtype == torch.float32 for p in model.module.parameters())
    assert np.isfinite(model.get_latent_representation()).all()


def test_resident_shard_gathers_its_cells_and_refuses_others(synthetic_mosaic_factory):
    mdata = synthetic_mosaic_factory()
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16)
    manager = model.adata_manager
    held = np.arange(0, 400, 2)  # a DDP process's shard: every other cell
    data = DeviceResidentData(manager, "cpu", rows=held)
    assert data.n_rows == 200
    assert resident_nbytes(manager, held) < resident_nbytes(manager)
    cells = np.array([398, 0, 6, 6, 250])
    local = data.local_rows(cells)
    batch = data.gather(
        torch.as_tensor(local),
        {k: v[0] for k, v in data.minibatch_nnz(local, np.array([0])).items()},
    )
    for key in ("x_rna", "x_atac", "x_adt"):
        want = manager.get_from_registry(key)[cells].toarray()
        np.testing.assert_array_equal(batch[key].to_dense().numpy(), want)
    with pytest.raises(RuntimeError, match="does not hold"):
        data.local_rows(np.array([0, 1]))
