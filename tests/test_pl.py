"""mosaicvi.pl: attention per batch, training history, modality presence per batch."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import mosaicvi


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture
def trained(synthetic_mosaic, train_quick):
    mdata = synthetic_mosaic
    mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch")
    model = mosaicvi.MosaicVI(mdata, n_latent=4)
    train_quick(model, max_epochs=2, train_size=0.8, check_val_every_n_epoch=1)
    return mdata, model


def _tick_labels(axis) -> list[str]:
    return [label.get_text() for label in axis.get_ticklabels()]


@pytest.mark.parametrize("kind", ["violin", "bar"])
def test_attention_weights_per_batch(trained, kind):
    mdata, model = trained
    weights = model.get_attention_weights()
    ax = mosaicvi.pl.attention_weights(weights, mdata.obs["batch"], kind=kind, show=False)
    assert _tick_labels(ax.xaxis) == ["b1", "b2", "b3", "b4"]
    assert ax.get_ylabel() == "attention weight"
    assert ax.get_xlabel() == "batch"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["rna", "atac", "adt"]
    if kind == "bar":
        heights = {(round(p.get_x() + p.get_width() / 2, 3)): p.get_height() for p in ax.patches}
        # b1 is RNA-only: its one RNA bar has weight 1; b3 has all three modalities.
        rna_b1 = [h for x, h in heights.items() if -0.5 < x < 0.5]
        assert rna_b1 == pytest.approx([1.0])
        assert len([x for x in heights if 1.5 < x < 2.5]) == 3
    else:
        # one violin per (batch, modality measured): b1 1, b2 1, b3 3, b4 2
        assert len(ax.collections) >= 7


def test_attention_weights_uses_presence_and_names(trained):
    mdata, model = trained
    weights = model.get_attention_weights()
    presence = mdata.obsm["_mosaicvi_presence"]
    ax = mosaicvi.pl.attention_weights(
        weights, mdata.obs["batch"].to_numpy(), kind="bar", presence=presence, show=False
    )
    assert len(ax.patches) == 7  # 1 + 1 + 3 + 2 modalities measured per batch
    assert ax.get_xlabel() == "group"


def test_attention_weights_bad_input():
    weights = pd.DataFrame({"rna": [0.5, 1.0], "atac": [0.5, 0.0]}, index=["c1", "c2"])
    with pytest.raises(ValueError, match="one entry per cell"):
        mosaicvi.pl.attention_weights(weights, ["b1"], show=False)
    with pytest.raises(ValueError, match="kind"):
        mosaicvi.pl.attention_weights(weights, ["b1", "b2"], kind="pie", show=False)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mosaicvi.pl.attention_weights(weights * 3, ["b1", "b2"], show=False)
    with pytest.raises(ValueError, match="missing for 1 cells"):
        mosaicvi.pl.attention_weights(weights, pd.Series(["b1", None], index=weights.index))
    with pytest.raises(ValueError, match="presence"):
        mosaicvi.pl.attention_weights(
            weights, ["b1", "b2"], presence=pd.DataFrame({"rna": [True, True]}), show=False
        )


def test_training_history_one_panel_per_term(trained):
    _, model = trained
    fig = mosaicvi.pl.training_history(model, show=False)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[:4] == ["elbo", "reconstruction_loss", "kl_local", "discriminator_loss"]
    assert "kl_global" not in titles  # always 0 for MosaicVI, named in the suptitle instead
    assert "kl_global" in fig._suptitle.get_text()
    assert "loss" in titles
    elbo = fig.axes[0]
    assert elbo.get_xlabel() == "epoch"
    assert [t.get_text() for t in elbo.get_legend().get_texts()] == ["train", "validation"]
    np.testing.assert_allclose(
        elbo.lines[0].get_ydata(), model.history["elbo_train"]["elbo_train"].to_numpy(dtype=float)
    )


def test_training_history_selected_terms_and_errors(trained):
    _, model = trained
    fig = mosaicvi.pl.training_history(model.history, terms=["discriminator_loss"], show=False)
    assert [ax.get_title() for ax in fig.axes] == ["discriminator_loss"]
    with pytest.raises(ValueError, match="Unknown `terms`"):
        mosaicvi.pl.training_history(model.history, terms=["graph_nll"], show=False)
    with pytest.raises(ValueError, match="trained model"):
        mosaicvi.pl.training_history({}, show=False)


def test_modality_presence_table_and_heatmap(synthetic_mosaic):
    synthetic_mosaic.obs["batch"] = synthetic_mosaic.obs_names.str.split("_").str[0]
    table = mosaicvi.pl.presence_table(synthetic_mosaic, "batch")
    assert list(table.columns) == ["rna", "atac", "adt", "cells"]
    assert table.loc["b1"].tolist() == [100, 0, 0, 100]
    assert table.loc["b3"].tolist() == [100, 100, 100, 100]
    ax = mosaicvi.pl.modality_presence(synthetic_mosaic, "batch", show=False)
    assert _tick_labels(ax.xaxis) == ["rna", "atac", "adt"]
    assert _tick_labels(ax.yaxis) == ["b1", "b2", "b3", "b4"]
    assert ax.get_ylabel() == "batch"
    image = ax.get_images()[0].get_array()
    np.testing.assert_allclose(image[3], [1.0, 1.0, 0.0])  # b4: RNA + ATAC
    assert "100" in [t.get_text() for t in ax.texts]


def test_modality_presence_bad_input(synthetic_mosaic):
    with pytest.raises(KeyError, match="pull_obs"):
        mosaicvi.pl.modality_presence(synthetic_mosaic, "batch", show=False)
    with pytest.raises(TypeError, match="MuData"):
        mosaicvi.pl.modality_presence(synthetic_mosaic["rna"], show=False)


def test_plots_return_none_when_shown(trained, monkeypatch):
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    mdata, model = trained
    assert mosaicvi.pl.training_history(model) is None
    assert mosaicvi.pl.attention_weights(model.get_attention_weights(), mdata.obs["batch"]) is None
    assert mosaicvi.pl.modality_presence(mdata, "batch") is None
    assert len(shown) == 3


def test_confusion_matrix_rows_normalised_and_ordered():
    truth = pd.Series(["T", "B", "B", "NK"], index=["c1", "c2", "c3", "c4"])
    # predict()'s categories (the model's classes) order the axes; Series align by name.
    predicted = pd.Series(
        pd.Categorical(["B", "T", "B", "T"], categories=["T", "B"]), index=["c2", "c3", "c4", "c1"]
    )
    with plt.rc_context({"axes.grid": True}):  # as scanpy's set_figure_params
        ax = mosaicvi.pl.confusion_matrix(truth, predicted, show=False)
    assert _tick_labels(ax.xaxis) == ["T", "B", "NK"]
    assert _tick_labels(ax.yaxis) == ["T (1)", "B (2)", "NK (1)"]
    matrix = ax.get_images()[0].get_array()
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0]])
    assert ax.get_xlabel() == "predicted"
    assert not any(line.get_visible() for line in ax.get_xgridlines())  # no grid over it
    counts = mosaicvi.pl.confusion_matrix(
        truth.to_numpy(), ["T", "B", "T", "B"], normalize=None, show=False
    )
    assert _tick_labels(counts.xaxis) == ["B", "NK", "T"]  # no categories: sorted
    np.testing.assert_array_equal(
        counts.get_images()[0].get_array(), [[1, 0, 1], [1, 0, 0], [0, 0, 1]]
    )


def test_confusion_matrix_bad_input():
    with pytest.raises(ValueError, match="one label per cell"):
        mosaicvi.pl.confusion_matrix(["a", "b"], ["a"], show=False)
    with pytest.raises(ValueError, match="missing for 1 cells"):
        mosaicvi.pl.confusion_matrix(pd.Series(["a", None]), ["a", "a"], show=False)
    with pytest.raises(ValueError, match="`normalize`"):
        mosaicvi.pl.confusion_matrix(["a"], ["a"], normalize="all", show=False)
