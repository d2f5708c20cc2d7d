"""The latent adversary's options: modality-set target and per-feature strength."""

from __future__ import annotations

import pytest
import torch

import mosaicvi
from mosaicvi.module._batch_adversary import (
    adversary_strength,
    discriminator_classes,
    make_latent_discriminator,
)

PRESENT = torch.tensor([[True, False], [False, True], [True, True]])


def test_modality_set_classes_and_batch_classes():
    batch = torch.tensor([[2], [0], [1]])
    assert discriminator_classes("modality_set", batch, PRESENT).tolist() == [0, 1, 2]
    assert discriminator_classes("batch", batch, PRESENT).tolist() == [2, 0, 1]


def test_strength_per_feature():
    measured = torch.tensor([[10.0], [100.0], [110.0]])  # the cells of PRESENT, 10 + 100 features
    assert adversary_strength(5.0, None, measured) == 5.0
    scaled = adversary_strength(5.0, 0.01, measured)
    assert scaled.shape == (3, 1)
    assert scaled.ravel().tolist() == pytest.approx([0.5, 5.0, 5.5])
    capped = adversary_strength(5.0, None, measured, full_strength_features=50)
    assert capped.ravel().tolist() == pytest.approx([1.0, 5.0, 5.0])  # 10 of 50 features: 1/5
    both = adversary_strength(5.0, 0.01, measured, full_strength_features=50)
    assert both.ravel().tolist() == pytest.approx([0.1, 5.0, 5.5])


def test_measured_features_count_modalities_and_feature_masks(synthetic_mosaic):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    module = mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4).module
    sizes = [stop - start for start, stop in module.feature_slices.values()]
    n = len(sizes)
    present = torch.stack([torch.eye(n, dtype=torch.bool)[0], torch.eye(n, dtype=torch.bool)[1]])
    present = torch.cat([present, torch.ones(1, n, dtype=torch.bool)])  # first, second, all
    batch = torch.zeros(3, 1)
    counts = module.measured_feature_counts(present, batch).ravel().tolist()
    assert counts == [sizes[0], sizes[1], sum(sizes)]
    first = next(iter(module.feature_slices))
    table = torch.ones(module.n_batch, sizes[0], dtype=torch.bool)
    table[0, :3] = False  # batch 0 did not measure 3 features of the first modality
    module.register_feature_masks({first: table.numpy()})
    counts = module.measured_feature_counts(present, batch).ravel().tolist()
    assert counts == [sizes[0] - 3, sizes[1], sum(sizes) - 3]


def test_discriminator_size_and_bad_target():
    assert make_latent_discriminator(True, "batch", 4, 1, 2, 0.1) is None
    assert make_latent_discriminator(True, "modality_set", 4, 1, 2, 0.1).output.out_features == 3
    assert make_latent_discriminator(False, "batch", 4, 3, 2, 0.1) is None
    with pytest.raises(ValueError, match="discriminator_target"):
        make_latent_discriminator(True, "sample", 4, 3, 2, 0.1)


def test_per_cell_strength_reverses_each_cells_gradient():
    from mosaicvi.nn._discriminator import reverse_gradient

    z = torch.ones(3, 2, requires_grad=True)
    reverse_gradient(z, torch.tensor([[1.0], [2.0], [0.0]])).sum().backward()
    assert z.grad[:, 0].tolist() == [-1.0, -2.0, 0.0]


@pytest.mark.parametrize(
    "options",
    [
        {"discriminator_target": "modality_set"},
        {"adversary_feature_scale": 0.001},
        {"adversary_full_strength_features": None},
    ],
)
def test_model_trains_and_reloads_with_the_options(
    synthetic_mosaic, train_quick, tmp_path, options
):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, n_hidden=32, **options))
    assert "discriminator_loss_train" in model.history
    model.save(tmp_path / "model")
    loaded = mosaicvi.MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic)
    for name, value in options.items():
        assert getattr(loaded.module, name) == value


def test_adversary_scale_is_resolved_stored_and_logged(
    synthetic_mosaic, train_quick, tmp_path, caplog
):
    from mosaicvi.model._options import ADVERSARY_FEATURE_SCALE, ADVERSARY_FULL_STRENGTH_FEATURES

    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with caplog.at_level("INFO", logger="mosaicvi.model._mosaicvi"):
        model = mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, n_hidden=32)
    lines = [r.message for r in caplog.records if "alignment" in r.message]
    assert len(lines) == 1
    assert f"full strength for cells measuring >= {ADVERSARY_FULL_STRENGTH_FEATURES:,}" in lines[0]
    assert model.module.adversary_feature_scale == ADVERSARY_FEATURE_SCALE
    assert model.module.adversary_full_strength_features == ADVERSARY_FULL_STRENGTH_FEATURES
    stored = model.init_params_["kwargs"]["module_kwargs"]
    assert stored["adversary_feature_scale"] == ADVERSARY_FEATURE_SCALE
    assert stored["adversary_full_strength_features"] == ADVERSARY_FULL_STRENGTH_FEATURES
    with caplog.at_level("INFO", logger="mosaicvi.model._mosaicvi"):
        mosaicvi.MosaicVI(
            synthetic_mosaic, n_latent=4, n_hidden=32, adversary_full_strength_features=None
        )
    assert "same strength for every cell" in caplog.records[-1].message
    with caplog.at_level("INFO", logger="mosaicvi.model._mosaicvi"):
        scaled = mosaicvi.MosaicVI(
            synthetic_mosaic, n_latent=4, n_hidden=32, adversary_feature_scale=0.001
        )
    assert "strength x 0.001 x measured features" in caplog.records[-1].message
    train_quick(scaled).save(tmp_path / "model")
    loaded = mosaicvi.MosaicVI.load(tmp_path / "model", adata=synthetic_mosaic)
    assert loaded.module.adversary_feature_scale == 0.001


def test_model_saved_before_the_scale_existed_keeps_one_strength():
    from mosaicvi.model._options import upgrade_init_params

    assert upgrade_init_params({"n_latent": 4})["adversary_feature_scale"] is None
    assert upgrade_init_params({"n_latent": 4})["adversary_full_strength_features"] is None
    kept = upgrade_init_params({"adversary_feature_scale": 0.001})
    assert kept["adversary_feature_scale"] == 0.001


@pytest.mark.parametrize("bad", [0, -5, 2.5, "1000", True])
def test_bad_full_strength_features_is_named(synthetic_mosaic, bad):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    with pytest.raises(ValueError, match="adversary_full_strength_features"):
        mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, adversary_full_strength_features=bad)
