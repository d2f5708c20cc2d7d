"""Per-step work without host syncs gives the same numbers as the code that syncs.

A host sync (reading a value back from an accelerator) cannot be observed on the CPU; these
tests check that the sync-free forms compute exactly what the reading forms did.
"""

from __future__ import annotations

import torch

import mosaicvi
from mosaicvi.module import _elbo
from mosaicvi.nn._sparse import gather_rows, row_ids


def test_row_ids_match_the_counts_of_each_row():
    x = torch.tensor([[0, 1.0, 0], [0, 0, 0], [2, 0, 3], [0, 0, 4]]).to_sparse_csr()
    crow = x.crow_indices()
    want = torch.repeat_interleave(torch.arange(4), crow[1:] - crow[:-1])  # reads the total
    assert torch.equal(row_ids(x), want)
    assert torch.equal(row_ids(x), torch.tensor([0, 2, 2, 3]))


def test_reconstruction_selects_measuring_rows_as_the_gather_did(synthetic_mosaic, monkeypatch):
    # One posterior sample per cell: the rows of the cells that measured a modality are
    # selected without reading back their count of stored values; same loss as gathering.
    mosaicvi.MosaicVI.setup_mudata(synthetic_mosaic, batch_key="batch")
    model = mosaicvi.MosaicVI(synthetic_mosaic, n_latent=4, n_hidden=16, n_hidden_decoder=16)
    tensors = next(iter(model._make_data_loader(model.adata, batch_size=64)))
    module = model.module.train()
    selected = []
    original = _elbo.select_rows

    def spy(x, rows):
        selected.append(x.layout)
        return original(x, rows)

    monkeypatch.setattr(_elbo, "select_rows", spy)
    torch.manual_seed(0)
    _, _, loss = module(tensors)
    assert torch.sparse_csr in selected  # the CSR modalities took the selecting path
    monkeypatch.setattr(_elbo, "select_rows", gather_rows)
    torch.manual_seed(0)
    _, _, gathered = module(tensors)
    assert torch.equal(loss.loss, gathered.loss)
    for key, value in gathered.reconstruction_loss.items():
        assert torch.equal(loss.reconstruction_loss[key], value), key
