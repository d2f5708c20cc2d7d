"""Model files: tensors-only weights plus a JSON manifest; nothing is unpickled at load time."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from mudata import MuData

import mosaicvi
from mosaicvi.model._json_codec import decode, encode
from mosaicvi.model._safe_io import MANIFEST_FILE, WEIGHTS_FILE

PACKAGE_DIR = Path(mosaicvi.__file__).parent


def tiny_model(mdata, **kwargs) -> mosaicvi.MosaicVI:
    return mosaicvi.MosaicVI(mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16, **kwargs)


@pytest.fixture
def saved(synthetic_mosaic, train_quick, tmp_path):
    """A tiny model trained for one epoch and saved; returns (model, mdata, directory)."""
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch", labels_key="cell_type")
    model = train_quick(tiny_model(synthetic_mosaic), max_epochs=1)
    model.save(tmp_path / "model")
    return model, synthetic_mosaic, tmp_path / "model"


class _Payload:
    """Unpickling this runs code: it writes ``marker`` (what an attacker's file would do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_save_writes_weights_and_json_manifest_only(saved):
    model, _, directory = saved
    assert sorted(p.name for p in directory.iterdir()) == sorted([MANIFEST_FILE, WEIGHTS_FILE])
    manifest = json.loads((directory / MANIFEST_FILE).read_text(), parse_constant=_no_constants)
    assert manifest["model_class"] == "MosaicVI"
    assert manifest["init_params"]["non_kwargs"]["n_latent"] == 4
    assert manifest["registry"]["setup_args"]["batch_key"] == "batch"
    weights = torch.load(directory / WEIGHTS_FILE, weights_only=True)
    assert set(weights) == set(model.module.state_dict())


def _no_constants(name):
    raise AssertionError(f"The manifest is not strict JSON: it holds {name}.")


def test_load_round_trip_restores_model_and_history(saved):
    model, mdata, directory = saved
    loaded = mosaicvi.MosaicVI.load(directory, adata=mdata, accelerator="cpu")
    assert loaded.is_trained
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-6
    )
    for key, frame in model.history.items():
        np.testing.assert_allclose(
            loaded.history[key].to_numpy(dtype=float), frame.to_numpy(dtype=float)
        )
    np.testing.assert_array_equal(loaded.train_indices, model.train_indices)
    registry = mosaicvi.MosaicVI.load_registry(directory)
    batch = registry["field_registries"]["batch"]["state_registry"]["categorical_mapping"]
    np.testing.assert_array_equal(batch, ["b1", "b2", "b3", "b4"])


def test_save_with_data_loads_without_passing_it(synthetic_mosaic, train_quick, tmp_path):
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(tiny_model(synthetic_mosaic), max_epochs=1)
    model.save(tmp_path / "m", save_anndata=True)
    loaded = mosaicvi.MosaicVI.load(tmp_path / "m", accelerator="cpu")
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-6
    )
    with pytest.raises(ValueError, match="already exists; pass `overwrite=True`"):
        model.save(tmp_path / "m")


def test_guidance_graph_round_trips_without_the_data_carrying_it(
    synthetic_mosaic, train_quick, tmp_path
):
    links = pd.DataFrame(
        [(f"gene{j}", f"peak{2 * j}") for j in range(30)], columns=["source", "target"]
    )
    graph = mosaicvi.data.guidance_graph(
        synthetic_mosaic, gene_coordinates=None, protein_to_gene=None, links=links, key=None
    )
    fresh = synthetic_mosaic.copy()  # the graph object is not stored in this copy
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = train_quick(tiny_model(synthetic_mosaic, guidance_graph=graph), max_epochs=1)
    model.save(tmp_path / "g")
    loaded = mosaicvi.MosaicVI.load(tmp_path / "g", adata=fresh, accelerator="cpu")
    for m, frame in model.get_feature_embeddings().items():
        pd.testing.assert_frame_equal(loaded.get_feature_embeddings()[m], frame)
    assert loaded.module.decoders["rna"].graph_weight == model.module.decoders["rna"].graph_weight


def test_planted_pickle_in_weights_is_refused_without_running(saved, tmp_path):
    _, mdata, directory = saved
    marker = tmp_path / "payload_ran"
    torch.save({"module": _Payload(marker)}, directory / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="objects other than tensors"):
        mosaicvi.MosaicVI.load(directory, adata=mdata, accelerator="cpu")
    assert not marker.exists()
    # The payload is real: a plain unpickler runs it.
    with open(directory / WEIGHTS_FILE, "rb") as handle:
        torch.load(handle, weights_only=False)
    assert marker.read_text() == "pwned"


def test_pickled_scvi_model_file_is_refused_without_running(synthetic_mosaic, tmp_path):
    marker = tmp_path / "payload_ran"
    directory = tmp_path / "scvi_style"
    directory.mkdir()
    with open(directory / "model.pt", "wb") as handle:
        pickle.dump({"attr_dict": _Payload(marker)}, handle)
    with pytest.raises(ValueError, match="pickled scvi-tools model file"):
        mosaicvi.MosaicVI.load(directory, adata=synthetic_mosaic)
    assert not marker.exists()
    with pytest.raises(NotImplementedError, match="does not convert pickled"):
        mosaicvi.MosaicVI.convert_legacy_save(directory, tmp_path / "out")


def test_tampered_manifest_cannot_name_types(saved):
    _, mdata, directory = saved
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["attributes"]["is_trained_"] = {"__reduce__": ["os.system", "echo hi"]}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="unknown tag"):
        mosaicvi.MosaicVI.load(directory, adata=mdata, accelerator="cpu")


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            "rename",
            r"modality 'rna': 1 saved features missing .*'gene3'.*1 features not .*'GENE3'",
        ),
        ("drop", r"modality 'adt': 1 saved features missing from the data \(e.g. \['prot14'\]\)"),
        ("reorder", r"modality 'atac': the same features in another order"),
    ],
)
def test_load_reports_how_features_differ(saved, fingerprint, edit, expected):
    _, mdata, directory = saved
    mods = {m: mdata.mod[m].copy() for m in mdata.mod}
    if edit == "rename":
        mods["rna"].var_names = [n.upper() if n == "gene3" else n for n in mods["rna"].var_names]
    elif edit == "drop":
        mods["adt"] = mods["adt"][:, :-1].copy()
    else:
        mods["atac"] = mods["atac"][:, ::-1].copy()
    edited = MuData(mods)
    before = fingerprint(edited)
    with pytest.raises(ValueError, match=expected):
        mosaicvi.MosaicVI.load(directory, adata=edited, accelerator="cpu")
    assert fingerprint(edited) == before


def test_package_never_unpickles_model_files():
    sources = {p: p.read_text() for p in PACKAGE_DIR.rglob("*.py")}
    assert not [p for p, text in sources.items() if "weights_only=False" in text]
    calls = [
        (p, m) for p, text in sources.items() for m in re.findall(r"torch\.load\([^)]*\)", text)
    ]
    assert calls, "the package should load weights with torch.load"
    assert all("weights_only=True" in call for _, call in calls), calls
    assert not [p for p, text in sources.items() if re.search(r"\bpickle\.loads?\(", text)]


def test_json_codec_round_trip_and_refusals():
    value = {
        "mapping": np.array(["b1", "b2"], dtype=object),
        "columns": np.arange(3),
        "nan": float("nan"),
        "pair": (1, "a"),
        "frame": pd.DataFrame({"loss": [1.5, float("inf")]}, index=pd.Index([0, 1], name="epoch")),
        "nested": {"n": np.int64(3), "flag": np.bool_(True)},
    }
    text = json.dumps(encode(value), allow_nan=False)
    back = decode(json.loads(text))
    np.testing.assert_array_equal(back["mapping"], value["mapping"])
    assert back["mapping"].dtype == object
    np.testing.assert_array_equal(back["columns"], value["columns"])
    assert np.isnan(back["nan"])
    assert back["pair"] == (1, "a")
    pd.testing.assert_frame_equal(back["frame"], value["frame"])
    assert back["nested"] == {"n": 3, "flag": True}
    with pytest.raises(TypeError, match=r"value\['obj'\] is a object"):
        encode({"obj": object()})
    with pytest.raises(ValueError, match="not allowed"):
        decode({"__ndarray__": [1], "dtype": "V8"})


def test_load_with_data_lacking_a_modality(saved):
    """Data that did not measure a modality loads: its cells count as not having measured it."""
    model, mdata, directory = saved
    mods = {m: mdata.mod[m].copy() for m in mdata.mod if m != "adt"}
    loaded = mosaicvi.MosaicVI.load(directory, adata=MuData(mods), accelerator="cpu")
    presence = loaded.adata.obsm["_mosaicvi_presence"]
    assert not presence["adt"].any()
    assert loaded.get_latent_representation().shape == (loaded.adata.n_obs, model.module.n_latent)
