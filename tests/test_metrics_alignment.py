"""mosaicvi.metrics.foscttm and knn_label_transfer: behaviour on known alignments, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from mosaicvi.metrics import foscttm, knn_label_transfer


@pytest.fixture
def z():
    return np.random.default_rng(0).normal(size=(300, 8))


def test_foscttm_perfect_alignment_is_zero(z):
    assert foscttm(z, z) == 0.0


def test_foscttm_random_alignment_is_about_half(z):
    shuffled = np.random.default_rng(1).normal(size=z.shape)
    assert foscttm(z, shuffled) == pytest.approx(0.5, abs=0.05)


def test_foscttm_chunks_do_not_change_the_result(z):
    noisy = z + np.random.default_rng(2).normal(scale=0.5, size=z.shape)
    assert foscttm(z, noisy, chunk_size=7) == pytest.approx(foscttm(z, noisy))


def test_foscttm_with_labels_splits_off_other_types():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 100)
    centres = np.where(labels == "a", 0.0, 100.0)[:, None]
    # Types perfectly apart, cells in random order within each type.
    x = rng.normal(size=(200, 3)) + centres
    y = rng.normal(size=(200, 3)) + centres
    total, other = foscttm(x, y, labels=labels)
    assert other == 0.0
    assert total == pytest.approx(0.25, abs=0.06)  # sum_k p_k^2 / 2 with two equal types


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (np.zeros((5, 2)), np.zeros((4, 2)), "same cells"),
        (np.zeros(5), np.zeros(5), "2-D"),
        (np.zeros((1, 2)), np.zeros((1, 2)), "at least two"),
        (np.full((3, 2), np.nan), np.zeros((3, 2)), "NaN"),
    ],
)
def test_foscttm_rejects_bad_shapes(x, y, match):
    with pytest.raises(ValueError, match=match):
        foscttm(x, y)


def test_foscttm_rejects_wrong_label_count(z):
    with pytest.raises(ValueError, match="`labels`"):
        foscttm(z, z, labels=np.zeros(3))


def test_knn_label_transfer_on_separable_clusters_is_perfect():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 60)
    centres = {"a": 0.0, "b": 20.0, "c": 40.0}
    z = rng.normal(size=(180, 4)) + np.array([centres[k] for k in labels])[:, None]
    accuracy, balanced = knn_label_transfer(z[::2], labels[::2], z[1::2], labels[1::2])
    assert (accuracy, balanced) == (1.0, 1.0)


def test_knn_label_transfer_random_labels_near_chance():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 4))
    labels = rng.choice(["a", "b"], size=400)
    accuracy, balanced = knn_label_transfer(z[:200], labels[:200], z[200:], labels[200:])
    assert 0.35 < accuracy < 0.65
    assert 0.35 < balanced < 0.65


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"query": np.zeros((4, 3))}, "same space"),
        ({"reference_labels": np.zeros(3)}, "`reference_labels`"),
        ({"query_labels": np.zeros(2)}, "`query_labels`"),
        ({"n_neighbors": 20}, "n_neighbors"),
        ({"reference": np.zeros(10)}, "2-D"),
    ],
)
def test_knn_label_transfer_rejects_bad_input(kwargs, match):
    arguments = {
        "reference": np.zeros((10, 2)),
        "reference_labels": np.zeros(10),
        "query": np.zeros((4, 2)),
        "query_labels": np.zeros(4),
        **kwargs,
    }
    with pytest.raises(ValueError, match=match):
        knn_label_transfer(**arguments)
