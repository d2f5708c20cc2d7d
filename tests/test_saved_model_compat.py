"""Models saved by earlier releases load and give the same outputs (permanent test).

The fixture under ``tests/data/saved_model_v0_1_0`` was trained and saved with mosaicvi 0.1.0
(commit 0c71a27, before the architecture refactor) by ``tests/scripts/make_saved_model_fixture.py``
with the outputs it returned then. Later changes that add stored fields or change defaults must
give files saved without them the old behaviour, so this test keeps passing.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pytest

import mosaicvi

DATA = Path(__file__).parent / "data"


def fixture_mudata() -> tuple[mudata.MuData, mosaicvi.data.GuidanceGraph]:
    """Batch s1d1 measured RNA and ATAC, batch s1d2 RNA only; a gene-peak graph (GRCh38)."""
    rna = ad.read_h5ad(DATA / "neurips2021_bmmc_multiome_starter_rna.h5ad")
    atac = ad.read_h5ad(DATA / "neurips2021_bmmc_multiome_starter_atac.h5ad")
    paired = mudata.MuData({"rna": rna, "atac": atac})
    paired.obs["batch"] = rna.obs["batch"].astype(str).to_numpy()
    mdata = mosaicvi.data.mosaic_split(
        paired, {"rna": ["s1d1", "s1d2"], "atac": ["s1d1"]}, batch_key="batch"
    )
    graph = mosaicvi.data.guidance_graph(mdata, gene_coordinates="GRCh38", key=None)
    return mdata, graph


FIXTURE = DATA / "saved_model_v0_1_0"
FIRST_CELLS = list(range(10)) + list(range(300, 310))


@pytest.fixture(scope="module")
def loaded():
    mdata, _ = fixture_mudata()
    model = mosaicvi.MosaicVI.load(FIXTURE, adata=mdata)
    return model, np.load(FIXTURE / "expected_outputs.npz")


def test_fixture_was_saved_by_the_old_release():
    manifest = json.loads((FIXTURE / "mosaicvi_model.json").read_text())
    assert manifest["versions"]["mosaicvi"] == "0.1.0"


def test_latent_and_attention_unchanged(loaded):
    model, expected = loaded
    np.testing.assert_allclose(model.get_latent_representation(), expected["latent"], atol=1e-6)
    attention = model.get_attention_weights().to_numpy()
    np.testing.assert_allclose(attention, expected["attention"], atol=1e-6)


@pytest.mark.parametrize("modality", ["rna", "atac"])
def test_decoded_values_unchanged(loaded, modality):
    model, expected = loaded
    decoded = model.get_normalized_expression(
        modality=modality, indices=FIRST_CELLS, use_z_mean=True, return_numpy=True
    )
    np.testing.assert_allclose(decoded, expected[modality], rtol=1e-5, atol=1e-6)


def test_old_init_params_load_without_deprecation_warnings():
    """The manifest holds ``graph_weight`` and ``output_discriminator`` (old keywords)."""
    mdata, _ = fixture_mudata()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = mosaicvi.MosaicVI.load(FIXTURE, adata=mdata)
    assert not [w for w in caught if "MosaicVI(" in str(w.message)]
    # Saved before the graph loss weight was resolved from the data: it keeps 0.02.
    graph_kwargs = {"weight": 0.9, "loss_weight": 0.02}
    assert model.init_params_["non_kwargs"]["graph_kwargs"] == graph_kwargs
    assert model.module.graph_loss_weight == 0.02
    assert model.init_params_["non_kwargs"]["output_discriminator_kwargs"] is None
    assert {d.graph_weight for d in model.module.decoders.values()} == {0.9}
    # Saved before the latent adversary was feature-scaled: it keeps one strength for all cells.
    assert model.module.adversary_feature_scale is None
