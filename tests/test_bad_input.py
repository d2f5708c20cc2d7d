"""Bad input: every case raises a clear error naming the field and the fix, and leaves the data as
it was (every matrix, table and mapping of the MuData/AnnData is compared before and after).

Each case below is ``(make, call, error, message)``: ``make`` edits a fresh synthetic mosaic into
the bad input (and may set it up or build a model first), ``call`` is what the user runs on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mosaicvi
from mosaicvi import MosaicVI


def tiny(data, **kwargs) -> MosaicVI:
    return MosaicVI(data, n_latent=4, n_hidden=16, n_hidden_decoder=16, **kwargs)


def quick_train(model: MosaicVI, **kwargs) -> MosaicVI:
    model.train(
        max_epochs=1, early_stopping=False, accelerator="cpu", enable_progress_bar=False, **kwargs
    )
    return model


def set_x(mdata: mudata.MuData, modality: str, edit: Callable[[np.ndarray], None]) -> None:
    dense = mdata.mod[modality].X.toarray()
    edit(dense)
    mdata.mod[modality].X = sp.csr_matrix(dense)


def rebuild(mdata: mudata.MuData, **mods: ad.AnnData) -> mudata.MuData:
    """A new MuData with some modalities replaced (``None`` drops one)."""
    new = {m: a for m, a in mdata.mod.items() if m not in mods}
    new.update({m: a for m, a in mods.items() if a is not None})
    return mudata.MuData(new)


def rna_only(mdata: mudata.MuData) -> ad.AnnData:
    return mdata.mod["rna"].copy()


@dataclass
class Case:
    """A bad input: ``make(mdata)`` returns ``(data, state)``; ``call(data, state)`` must raise."""

    make: Callable[[mudata.MuData], tuple[Any, Any]]
    call: Callable[[Any, Any], Any]
    error: type[Exception]
    message: str
    requires: str | None = None  # a MosaicVI method the case needs (skipped when absent)


def setup(**kwargs) -> Callable[[Any, Any], Any]:
    def _call(data, _):
        if isinstance(data, ad.AnnData) and not kwargs.pop("as_mudata", False):
            return MosaicVI.setup_anndata(data, **kwargs)
        return MosaicVI.setup_mudata(data, **kwargs)

    return _call


def edited(edit: Callable[[mudata.MuData], Any]) -> Callable[[mudata.MuData], tuple[Any, Any]]:
    """``make`` that edits the mosaic in place (``edit`` may return a replacement object)."""

    def _make(mdata):
        replaced = edit(mdata)
        return (mdata if replaced is None else replaced), None

    return _make


def _scale(mdata, factor):
    set_x(mdata, "rna", lambda x: x.__imul__(factor))


def _first_value(mdata, modality, value):
    def _edit(x):
        x[0, 0] = value

    set_x(mdata, modality, _edit)


def _scale_x_in_place(mdata):
    """Halve the RNA counts in place, as an in-place normalisation would."""
    mdata.mod["rna"].X.data *= 0.5


def _rename_cells(mdata):
    """Rename every cell of the MuData (the model's copies no longer name the same cells)."""
    mdata.obs_names = [f"cell{i}" for i in range(mdata.n_obs)]


def _anndata_with_fractions(mdata):
    _scale(mdata, 0.5)
    return rna_only(mdata)


def _anndata_with_duplicate_features(mdata):
    adata = rna_only(mdata)
    adata.var_names = ["gene0", *adata.var_names[1:-1], "gene0"]
    return adata


def _no_cells(mdata):
    return rebuild(mdata, adt=mdata.mod["adt"][:0].copy())


def _no_features(mdata):
    return rebuild(mdata, adt=mdata.mod["adt"][:, :0].copy())


def _duplicate_within(mdata):
    rna = mdata.mod["rna"].copy()
    rna.var_names = ["gene0"] + list(rna.var_names[1:-1]) + ["gene0"]
    return rebuild(mdata, rna=rna)


def _duplicate_across(mdata):
    adt = mdata.mod["adt"].copy()
    adt.var_names = [f"gene{i}" for i in range(adt.n_vars)]
    return rebuild(mdata, adt=adt)


def _duplicate_cells_in_modality(mdata):
    adt = mdata.mod["adt"].copy()
    names = adt.obs_names.to_numpy().copy()
    names[1] = names[0]
    adt.obs_names = names
    return rebuild(mdata, adt=adt)


def _duplicate_global_cells(mdata):
    rna = mdata.mod["rna"].copy()
    names = rna.obs_names.to_numpy().copy()
    names[1] = names[0]
    rna.obs_names = names
    return mudata.MuData({"rna": rna})


def _cells_outside_global(mdata):
    mdata.mod["adt"].obs_names = [f"stranger{i}" for i in range(mdata.mod["adt"].n_obs)]


def _column_in_global_obs(mdata, key, nan_cell=None):
    values = pd.Series("x", index=mdata.obs_names, dtype=object)
    if nan_cell is not None:
        values[nan_cell] = np.nan
    mdata.obs[key] = values


def _batch_with_nan(mdata):
    _column_in_global_obs(mdata, "sample", nan_cell="b2_cell3")


def _labels_with_nan(mdata):
    _column_in_global_obs(mdata, "annotation", nan_cell="b4_cell7")


def _backed_mudata(mdata, tmp_path):
    path = tmp_path / "backed.h5mu"
    mdata.write(path)
    return mudata.read_h5mu(path, backed="r")


def _backed_anndata(mdata, tmp_path):
    path = tmp_path / "backed.h5ad"
    mdata.mod["rna"].write(path)
    return ad.read_h5ad(path, backed="r")


def _setup_then(edit_after=None, model=False, train=False, labels=None, edit_before=None):
    """``make`` that sets the mosaic up (optionally builds/trains a model) and then edits it."""

    def _make(mdata):
        if edit_before is not None:
            edit_before(mdata)
        kwargs = {"batch_key": "batch"}
        if labels is not None:
            kwargs.update(labels)
        MosaicVI.setup_mudata(mdata, **kwargs)
        state = tiny(mdata) if model or train else None
        if train:
            quick_train(state)
        if edit_after is not None:
            edit_after(mdata)
        return mdata, state

    return _make


def _single_cell_batch(mdata):
    for m in mdata.mod:
        obs = mdata.mod[m].obs
        obs.loc[obs.index == "b4_cell0", "batch"] = "lonely"


def _query_with(mdata, column, value):
    query = mdata[mdata.obs_names[mdata.obs["batch"] == "b3"]].copy()
    query.obs[column] = query.obs[column].astype(object)
    query.obs.iloc[0, query.obs.columns.get_loc(column)] = value
    return query


def _graph_on_other_features(mdata):
    links = pd.DataFrame({"source": ["gene0", "gene1"], "target": ["peak0", "peak1"]})
    graph = mosaicvi.data.guidance_graph(
        mdata, gene_coordinates=None, protein_to_gene=None, links=links, key=None
    )
    MosaicVI.setup_mudata(mdata, batch_key="batch")
    other = rebuild(mdata, atac=mdata.mod["atac"][:, 1:].copy())
    MosaicVI.setup_mudata(other, batch_key="batch")
    return other, graph


CASES: dict[str, Case] = {
    "non-integer counts": Case(
        edited(lambda m: _scale(m, 0.5)),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['rna'\].X holds non-integer values.*need raw counts.*`layers=",
    ),
    "negative values": Case(
        edited(lambda m: _first_value(m, "adt", -1.0)),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['adt'\].X contains negative values.*raw-count layer with `layers=`",
    ),
    "NaN values": Case(
        edited(lambda m: _first_value(m, "atac", np.nan)),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['atac'\].X contains NaN or infinite values.*raw-count layer with `layers=`",
    ),
    "infinite values": Case(
        edited(lambda m: _first_value(m, "rna", np.inf)),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['rna'\].X contains NaN or infinite values.*raw-count layer with `layers=`",
    ),
    "empty modality (no cells)": Case(
        edited(_no_cells),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['adt'\] has no cells; drop it from `modalities`",
    ),
    "modality without features": Case(
        edited(_no_features),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['adt'\] has no features; drop it from `modalities`",
    ),
    "modality no cell has (not in the data)": Case(
        edited(lambda m: None),
        setup(modalities={"rna": "rna", "hic": "counts"}, batch_key="batch"),
        ValueError,
        r"`modalities` names \['hic'\], which the data does not have. Available",
    ),
    "cell in no modelled modality": Case(
        edited(lambda m: None),
        setup(modalities=["rna", "atac"], batch_key="batch"),
        ValueError,
        r"100 cells of mdata.obs are in none of the modelled modalities.*Subset them away",
    ),
    "duplicate feature names within a modality": Case(
        edited(_duplicate_within),
        setup(batch_key="batch"),
        ValueError,
        r"Feature names repeat within or across modalities \(e.g. \['gene0'\]\). Make them uniq",
    ),
    "duplicate feature names across modalities": Case(
        edited(_duplicate_across),
        setup(batch_key="batch"),
        ValueError,
        r"Feature names repeat .*\['gene0', 'gene1'.*suffix protein names",
    ),
    "duplicate obs_names in a modality": Case(
        edited(_duplicate_cells_in_modality),
        setup(batch_key="batch"),
        ValueError,
        r"obs_names has duplicates \(e.g. \['b2_cell0'\]\).*obs_names_make_unique",
    ),
    "duplicate obs_names in mdata": Case(
        edited(_duplicate_global_cells),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.obs_names has duplicates \(e.g. \['b1_cell0'\]\).*obs_names_make_unique",
    ),
    "modality obs_names not in mdata.obs_names": Case(
        edited(_cells_outside_global),
        setup(batch_key="batch"),
        ValueError,
        r"mdata.mod\['adt'\] has cells that are not in mdata.obs_names.*mdata.update\(\)",
    ),
    "batch_key missing": Case(
        edited(lambda m: None),
        setup(batch_key="sample"),
        ValueError,
        r"`batch_key='sample'` is not a column of obs nor of any modality's obs. Available",
    ),
    "batch_key with NaN": Case(
        edited(_batch_with_nan),
        setup(batch_key="sample"),
        ValueError,
        r"`batch_key='sample'` has no value for 1 cells \(e.g. \['b2_cell3'\]\). Fill them",
    ),
    "labels_key missing": Case(
        edited(lambda m: None),
        setup(batch_key="batch", labels_key="annotation"),
        ValueError,
        r"`labels_key='annotation'` is not a column of obs nor of any modality's obs",
    ),
    "labels_key with NaN": Case(
        edited(_labels_with_nan),
        setup(batch_key="batch", labels_key="annotation"),
        ValueError,
        r"`labels_key='annotation'` has no value for 1 cells \(e.g. \['b4_cell7'\]\). Fill",
    ),
    "categorical covariate missing": Case(
        edited(lambda m: None),
        setup(batch_key="batch", categorical_covariate_keys=["donor"]),
        ValueError,
        r"`categorical_covariate_keys\[0\]='donor'` is not a column of obs",
    ),
    "missing counts layer": Case(
        edited(lambda m: None),
        setup(batch_key="batch", layers={"rna": "counts"}),
        ValueError,
        r"mdata.mod\['rna'\] has no layer 'counts'; its layers are \[\]. Pass `layers=None`",
    ),
    "layers for an unknown modality": Case(
        edited(lambda m: None),
        setup(batch_key="batch", layers={"protein": "counts"}),
        ValueError,
        r"`layers` names modalities \['protein'\] that are not modelled; modelled",
    ),
    "unknown modality kind": Case(
        edited(lambda m: None),
        setup(modalities={"rna": "rna", "adt": "protein"}, batch_key="batch"),
        ValueError,
        r"`modalities\['adt'\]` is 'protein'; it must be one of \('rna', 'atac', 'adt', 'cou",
    ),
    "modality name whose kind cannot be inferred": Case(
        edited(lambda m: rebuild(m, adt=None, foo=m.mod["adt"].copy())),
        setup(batch_key="batch"),
        ValueError,
        r"Cannot tell which kind of modality 'foo' is. Pass it explicitly, e.g. `modalities=",
    ),
    "modalities given as a string": Case(
        edited(lambda m: None),
        setup(modalities="rna", batch_key="batch"),
        TypeError,
        r"`modalities` must be a dict \{modality name: kind\} or a list of modality names",
    ),
    "AnnData given to setup_mudata": Case(
        edited(rna_only),
        setup(batch_key="batch", as_mudata=True),
        TypeError,
        r"setup_mudata needs a MuData, got an AnnData.*MosaicVI.setup_anndata",
    ),
    "MuData given to setup_anndata": Case(
        edited(lambda m: None),
        lambda data, _: MosaicVI.setup_anndata(data, batch_key="batch"),
        TypeError,
        r"setup_anndata needs an AnnData, got a MuData.*MosaicVI.setup_mudata",
    ),
    "AnnData with non-integer counts": Case(
        edited(_anndata_with_fractions),
        setup(batch_key="batch"),
        ValueError,
        r"adata.X holds non-integer values .*`layers=",
    ),
    "AnnData with duplicate var_names": Case(
        edited(_anndata_with_duplicate_features),
        setup(batch_key="batch"),
        ValueError,
        r"adata.var_names has duplicates \(e.g. \['gene0'\]\); `adata.var_names_make_unique",
    ),
    "backed MuData": Case(
        None,  # built from tmp_path in the test
        setup(batch_key="batch"),
        ValueError,
        r"is backed on disk; load it into memory first",
    ),
    "backed AnnData": Case(
        None,
        setup(batch_key="batch"),
        ValueError,
        r"adata is backed on disk; load it into memory first.*to_memory\(\)",
    ),
    "batch of one cell (at train)": Case(
        _setup_then(model=True, edit_before=_single_cell_batch),
        lambda data, model: model.train(max_epochs=1, accelerator="cpu"),
        ValueError,
        r"`batch_key='batch'`: batches \['lonely'\] have a single cell.*Merge them",
    ),
    "MuData counts edited in place after setup (train)": Case(
        _setup_then(model=True, edit_after=_scale_x_in_place),
        lambda data, model: model.train(max_epochs=1, accelerator="cpu"),
        ValueError,
        r"data the model reads changed after it was set up \(mdata.obsm\['_mosaicvi_x_rna'\]: "
        r"count values changed\). Setup shares its count arrays with mdata.mod\['rna'\].X.*"
        r"layers=\{'rna': 'counts'\}",
    ),
    "MuData cells changed after training (outputs)": Case(
        _setup_then(train=True, edit_after=_rename_cells),
        lambda data, model: model.get_latent_representation(),
        ValueError,
        r"changed after it was set up \(mdata: cells \(obs_names\) changed\). Set the raw counts "
        r"up again with `MosaicVI.setup_mudata\(...\)`",
    ),
    "outputs before train()": Case(
        _setup_then(model=True),
        lambda data, model: model.get_latent_representation(),
        RuntimeError,
        r"untrained model. Please train the model first",
    ),
    "unknown batch in query data": Case(
        _setup_then(train=True),
        lambda data, model: model.get_latent_representation(_query_with(data, "batch", "b9")),
        ValueError,
        r"`batch_key='batch'` has categories the model was not trained with: \['b9'\]",
    ),
    "label category unseen in training at predict": Case(
        _setup_then(train=True, labels={"labels_key": "cell_type", "unlabeled_category": "?"}),
        lambda data, model: model.predict(_query_with(data, "cell_type", "Z")),
        ValueError,
        r"`labels_key='cell_type'` has categories the model was not trained with: \['Z'\]",
        requires="predict",
    ),
    "transform_batch naming an unknown batch": Case(
        _setup_then(train=True),
        lambda data, model: model.get_normalized_expression(modality="rna", transform_batch="b9"),
        ValueError,
        r"`transform_batch` 'b9' is not a batch of the model; batches: \['b1', 'b2', 'b3', 'b4'\]",
        requires="get_normalized_expression",
    ),
    "guidance graph with other feature names": Case(
        _graph_on_other_features,
        lambda data, graph: tiny(data, guidance_graph=graph),
        ValueError,
        r"guidance graph was built on other 'atac' features.*Build the graph again",
    ),
    "likelihood for an unknown modality": Case(
        _setup_then(),
        lambda data, _: tiny(data, likelihoods={"protein": "nb"}),
        ValueError,
        r"`likelihoods` names 'protein', not a modality of the model",
    ),
}

#: Cases whose data is read from disk (backed mode), built from ``tmp_path``.
BACKED = {"backed MuData": _backed_mudata, "backed AnnData": _backed_anndata}


def _make_case(name: str, mdata: mudata.MuData, tmp_path):
    if name in BACKED:
        return BACKED[name](mdata, tmp_path), None
    return CASES[name].make(mdata)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_clearly_and_data_left_unchanged(
    name, synthetic_mosaic, fingerprint, tmp_path
):
    case = CASES[name]
    if case.requires is not None and not hasattr(MosaicVI, case.requires):
        pytest.skip(f"MosaicVI.{case.requires} is not available in this version")
    data, state = _make_case(name, synthetic_mosaic, tmp_path)
    before = fingerprint(data)
    with pytest.raises(case.error, match=case.message):
        case.call(data, state)
    assert fingerprint(data) == before


def test_at_least_25_cases():
    assert len(CASES) >= 25


# --------------------------------------------------------------------------------------------------
# Inputs that look unusual but are valid: set up without touching the user's matrices
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda x: x.toarray(), id="dense float32"),
        pytest.param(lambda x: sp.csr_matrix(x), id="CSR"),
        pytest.param(lambda x: sp.csc_matrix(x), id="CSC"),
        pytest.param(lambda x: x.toarray().astype(np.float64), id="dense float64"),
        pytest.param(lambda x: sp.csr_matrix(x, dtype=np.int32), id="CSR int32"),
        pytest.param(lambda x: x.toarray().astype(np.int64), id="dense int64"),
    ],
)
def test_matrix_formats_and_dtypes_are_accepted_unchanged(synthetic_mosaic, fingerprint, convert):
    reference = {m: synthetic_mosaic.mod[m].X.toarray() for m in synthetic_mosaic.mod}
    for m in synthetic_mosaic.mod:
        synthetic_mosaic.mod[m].X = convert(synthetic_mosaic.mod[m].X)
    before = fingerprint(synthetic_mosaic)["mod"]
    MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    assert fingerprint(synthetic_mosaic)["mod"] == before  # the modalities are not touched
    for m, counts in reference.items():
        aligned = synthetic_mosaic.obsm[f"_mosaicvi_x_{m}"]
        rows = synthetic_mosaic.obs_names.get_indexer(synthetic_mosaic.mod[m].obs_names)
        np.testing.assert_array_equal(aligned[rows].toarray(), counts)
        assert aligned.dtype == np.float32
