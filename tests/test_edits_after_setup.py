"""Normalising or log-transforming X after setup: outputs stay identical, or a clear error."""

from __future__ import annotations

import mudata
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

from mosaicvi import MosaicVI

#: The error that asks to keep counts in a layer.
KEEP_COUNTS_IN_A_LAYER = r"changed after it was set up.*`layers=\{'rna': 'counts'\}`"


def _paired(mosaic: mudata.MuData) -> mudata.MuData:
    cells = mosaic["rna"].obs_names.intersection(mosaic["atac"].obs_names)
    paired = mudata.MuData({m: mosaic[m][cells].copy() for m in ("rna", "atac")})
    paired.obs["batch"] = mosaic.obs.loc[cells, "batch"].to_numpy()
    return paired


def _trained(mdata, train_quick, **setup_kwargs) -> MosaicVI:
    MosaicVI.setup_mudata(mdata, batch_key="batch", **setup_kwargs)
    model = MosaicVI(mdata, n_latent=4, n_hidden=16, n_hidden_decoder=16)
    return train_quick(model, max_epochs=1)


def _outputs(model: MosaicVI) -> dict[str, np.ndarray]:
    """Every per-cell output, computed deterministically (posterior means)."""
    return {
        "latent": model.get_latent_representation(),
        "attention": model.get_attention_weights().to_numpy(),
        "rna": model.get_normalized_expression(modality="rna", use_z_mean=True).to_numpy(),
        "atac": model.get_normalized_expression(modality="atac", use_z_mean=True).to_numpy(),
    }


def _normalise_and_log(mdata: mudata.MuData) -> None:
    sc.pp.normalize_total(mdata["rna"])
    sc.pp.log1p(mdata["rna"])


def _log_in_place(mdata: mudata.MuData) -> None:
    """log1p written into X's own arrays, as an in-place normalisation would."""
    x = mdata["rna"].X
    np.log1p(x.data, out=x.data)


@pytest.mark.parametrize("pairing", ["paired", "unpaired"])
@pytest.mark.parametrize("edit", [_normalise_and_log, _log_in_place], ids=["scanpy", "in-place"])
def test_editing_x_after_setup_never_changes_outputs_silently(
    snareseq_small, train_quick, pairing, edit
):
    mdata = snareseq_small() if pairing == "unpaired" else _paired(snareseq_small())
    model = _trained(mdata, train_quick)
    before = _outputs(model)
    edit(mdata)
    try:
        after = _outputs(model)
    except ValueError as error:
        assert pd.Series([str(error)]).str.contains(KEEP_COUNTS_IN_A_LAYER).all(), error
        assert edit is _log_in_place  # only an edit of the shared arrays reaches the model
        with pytest.raises(ValueError, match=KEEP_COUNTS_IN_A_LAYER):
            model.train(max_epochs=1)
        return
    for name, values in before.items():
        np.testing.assert_array_equal(after[name], values, err_msg=name)


def test_in_place_edit_of_shared_counts_is_refused_naming_the_source(snareseq_small, train_quick):
    mdata = _paired(snareseq_small())
    model = _trained(mdata, train_quick)
    _log_in_place(mdata)
    with pytest.raises(ValueError, match=r"shares its count arrays with mdata.mod\['rna'\].X"):
        model.get_latent_representation()


def test_counts_in_a_layer_keep_every_output_identical(snareseq_small, train_quick):
    mdata = snareseq_small()
    mdata["rna"].layers["counts"] = mdata["rna"].X.copy()
    model = _trained(mdata, train_quick, layers={"rna": "counts"})
    before = _outputs(model)
    _log_in_place(mdata)  # even an in-place edit of X: the model reads the layer
    _normalise_and_log(mdata)
    after = _outputs(model)
    for name, values in before.items():
        np.testing.assert_array_equal(after[name], values, err_msg=name)
