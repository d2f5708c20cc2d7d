"""``mosaicvi.data.neurips2021_bmmc_starter``: the shipped BMMC starter files."""

from __future__ import annotations

import numpy as np
import pytest

import mosaicvi

pytestmark = pytest.mark.filterwarnings("ignore::anndata.OldFormatWarning")


def test_bmmc_starter_parts_are_paired_counts():
    parts = mosaicvi.data.neurips2021_bmmc_starter()
    assert list(parts) == ["multiome_rna", "multiome_atac", "cite_rna", "cite_adt"]
    assert parts["multiome_rna"].obs_names.equals(parts["multiome_atac"].obs_names)
    assert parts["cite_rna"].obs_names.equals(parts["cite_adt"].obs_names)
    assert not parts["multiome_rna"].obs_names.isin(parts["cite_rna"].obs_names).any()
    for adata in parts.values():
        counts = adata.layers["counts"]
        values = counts.data if hasattr(counts, "data") else np.asarray(counts)
        assert (values >= 0).all() and np.allclose(values, np.round(values))
        assert {"cell_type", "batch"} <= set(adata.obs.columns)
    shared = parts["multiome_rna"].var_names.intersection(parts["cite_rna"].var_names)
    assert len(shared) == 76
    # a new object each call: editing one does not change the next
    parts["cite_adt"].obs["cell_type"] = "x"
    again = mosaicvi.data.neurips2021_bmmc_starter()
    assert (again["cite_adt"].obs["cell_type"] != "x").all()
