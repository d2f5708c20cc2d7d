"""Shared fixtures: a small synthetic unpaired MuData and a small real SNARE-seq mosaic."""

from __future__ import annotations

import logging

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scvi
import torch

import mosaicvi

#: Which modalities each synthetic batch measured.
SYNTHETIC_DESIGN = {
    "b1": ("rna",),
    "b2": ("adt",),
    "b3": ("rna", "atac", "adt"),
    "b4": ("rna", "atac"),
}
N_CELLS_PER_BATCH = 100
N_FEATURES = {"rna": 60, "atac": 200, "adt": 15}
FEATURE_PREFIX = {"rna": "gene", "atac": "peak", "adt": "prot"}
CELL_TYPES = ("A", "B", "C")
#: A measured RNA cell whose RNA counts are all zero (it must still count as present).
ZERO_RNA_CELL = "b1_cell0"


def pytest_configure(config):
    # The test models are tiny: one thread is as fast and avoids oversubscribing shared CPUs.
    torch.set_num_threads(1)
    for message in (
        "ignore:.*does not have many workers.*",
        "ignore:.*num_workers.*",
        "ignore:.*pull_on_update.*",
        "ignore:.*GPU available but not used.*",
        "ignore:.*LightningDeprecationWarning.*",
        "ignore::UserWarning:lightning.*",
        "ignore::UserWarning:mudata.*",
        "ignore::anndata.ImplicitModificationWarning",
        "ignore:Sparse .*:UserWarning",
        "ignore:.*has fewer than 3 cells.*:UserWarning",
    ):
        config.addinivalue_line("filterwarnings", message)


@pytest.fixture(autouse=True, scope="session")
def _quiet():
    scvi.settings.verbosity = logging.WARNING
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same seed, whatever ran before it."""
    scvi.settings.seed = 0


@pytest.fixture(scope="session")
def train_quick():
    """Train a model for a couple of epochs, quietly, on the CPU; checks the epochs ran."""

    def _train(model, max_epochs: int = 2, **kwargs):
        kwargs.setdefault("batch_size", 128)
        kwargs.setdefault("early_stopping", False)
        kwargs.setdefault("accelerator", "cpu")
        kwargs.setdefault("enable_progress_bar", False)
        kwargs.setdefault("enable_model_summary", False)
        model.train(max_epochs=max_epochs, **kwargs)
        assert len(model.history["elbo_train"]) == max_epochs
        return model

    return _train


def _synthetic_modality(
    rng: np.random.Generator,
    modality: str,
    cells: list[str],
    batches: list[str],
    cell_types: list[str],
    profiles: dict[str, np.ndarray],
) -> ad.AnnData:
    rates = np.stack([profiles[t] for t in cell_types])
    counts = rng.poisson(rates).astype(np.float32)
    if modality == "atac":
        counts = np.minimum(counts, 2)  # binary-ish
    adata = ad.AnnData(
        X=sp.csr_matrix(counts, dtype=np.float32),
        obs=pd.DataFrame({"batch": batches, "cell_type": cell_types}, index=cells),
        var=pd.DataFrame(
            index=[f"{FEATURE_PREFIX[modality]}{j}" for j in range(N_FEATURES[modality])]
        ),
    )
    return adata


def make_synthetic_mosaic(seed: int = 0) -> mudata.MuData:
    """Unpaired MuData: b1 RNA only, b2 ADT only, b3 RNA+ATAC+ADT, b4 RNA+ATAC (100 cells each).

    ``batch`` and ``cell_type`` live in each modality's ``obs`` only. Cell ``ZERO_RNA_CELL`` has
    an all-zero RNA row.
    """
    rng = np.random.default_rng(seed)
    profiles = {}
    for modality, n in N_FEATURES.items():
        if modality == "atac":
            base = {t: rng.uniform(0.02, 0.4, n) for t in CELL_TYPES}
        elif modality == "adt":
            base = {t: rng.gamma(2.0, 10.0, n) for t in CELL_TYPES}
        else:
            base = {t: rng.gamma(0.8, 2.0, n) for t in CELL_TYPES}
        profiles[modality] = base
    members: dict[str, list[tuple[str, str, str]]] = {m: [] for m in N_FEATURES}
    for batch, modalities in SYNTHETIC_DESIGN.items():
        cell_types = rng.choice(CELL_TYPES, size=N_CELLS_PER_BATCH)
        for i in range(N_CELLS_PER_BATCH):
            cell = (f"{batch}_cell{i}", batch, str(cell_types[i]))
            for modality in modalities:
                members[modality].append(cell)
    mods = {}
    for modality, cells in members.items():
        names, batches, types = (list(v) for v in zip(*cells, strict=True))
        mods[modality] = _synthetic_modality(
            rng, modality, names, batches, types, profiles[modality]
        )
    rna = mods["rna"]
    row = rna.obs_names.get_loc(ZERO_RNA_CELL)
    dense = rna.X.toarray()
    dense[row] = 0
    rna.X = sp.csr_matrix(dense, dtype=np.float32)
    return mudata.MuData(mods)


@pytest.fixture
def synthetic_mosaic() -> mudata.MuData:
    """Fresh small unpaired MuData (see :func:`make_synthetic_mosaic`)."""
    return make_synthetic_mosaic()


@pytest.fixture(scope="session")
def synthetic_mosaic_factory():
    """:func:`make_synthetic_mosaic` itself, for fixtures with a module or session scope."""
    return make_synthetic_mosaic


@pytest.fixture(scope="session")
def _snareseq_small_base() -> tuple[mudata.MuData, list[str]]:
    paired = mosaicvi.data.snareseq()
    rng = np.random.default_rng(0)
    batch = paired.obs["batch"].astype(str)
    batches = sorted(batch.unique())
    cells = []
    for b in batches:
        in_batch = np.flatnonzero((batch == b).to_numpy())
        cells.append(rng.choice(in_batch, size=84, replace=False))
    cells = np.sort(np.concatenate(cells))
    atac = paired.mod["atac"]
    open_cells = np.asarray((atac.X[cells] > 0).sum(0)).ravel()
    peaks = np.sort(np.argsort(-open_cells, kind="stable")[:3000])
    small = mudata.MuData(
        {
            "rna": paired.mod["rna"][cells].copy(),
            "atac": atac[cells][:, peaks].copy(),
        }
    )
    small.obs["batch"] = paired.obs["batch"].iloc[cells].to_numpy()
    small.obs["cell_type"] = paired.obs["cell_type"].iloc[cells].to_numpy()
    mosaic = mosaicvi.data.mosaic_split(
        small, {"rna": batches[:8], "atac": batches[:4] + batches[8:]}
    )
    return mosaic, batches


@pytest.fixture(scope="session")
def snareseq_small(_snareseq_small_base):
    """Factory: a fresh copy of a ~1000-cell SNARE-seq mosaic.

    4 batches paired (RNA+ATAC), 4 RNA-only, 4 ATAC-only; ATAC cut to the 3000 most open peaks.
    """
    base, _ = _snareseq_small_base

    def _make() -> mudata.MuData:
        return base.copy()

    return _make


@pytest.fixture(scope="session")
def snareseq_batches(_snareseq_small_base) -> list[str]:
    """The 12 batch names of SNARE-seq, sorted."""
    return list(_snareseq_small_base[1])


def _digest(value) -> str:
    """A content hash of a matrix, DataFrame or other value (type, dtype and format included)."""
    import hashlib

    h = hashlib.sha1(type(value).__name__.encode())
    if sp.issparse(value):
        h.update(f"{value.format}{value.dtype}{value.shape}".encode())
        for part in (value.tocsr().indptr, value.tocsr().indices, value.tocsr().data):
            h.update(np.ascontiguousarray(part).tobytes())
    elif isinstance(value, np.ndarray):
        h.update(f"{value.dtype}{value.shape}".encode())
        h.update(
            np.ascontiguousarray(value).tobytes()
            if value.dtype != object
            else repr(value.tolist()).encode()
        )
    elif isinstance(value, pd.DataFrame | pd.Series | pd.Index):
        h.update(repr(value.dtypes if isinstance(value, pd.DataFrame) else value.dtype).encode())
        h.update(
            pd.util.hash_pandas_object(
                value.astype(object)
                if not isinstance(value, pd.Index)
                else pd.Series(value.astype(object)),
                index=True,
            )
            .to_numpy()
            .tobytes()
        )
        if isinstance(value, pd.DataFrame):
            h.update(repr(list(value.columns)).encode())
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


def _fingerprint_adata(adata: ad.AnnData) -> dict:
    state = {
        "shape": adata.shape,
        "backed": adata.isbacked,
        "X": "backed" if adata.isbacked else _digest(adata.X),
        "obs": _digest(adata.obs),
        "var": _digest(adata.var),
        "uns": sorted(adata.uns),
    }
    for attr in ("layers", "obsm", "varm", "obsp", "varp"):
        mapping = getattr(adata, attr)
        state[attr] = {k: _digest(mapping[k]) for k in mapping}
    return state


@pytest.fixture(scope="session")
def fingerprint():
    """Function: a comparable summary of every part of an AnnData or MuData (content hashes)."""

    def _fingerprint(data) -> dict:
        if isinstance(data, mudata.MuData):
            state = {
                "obs": _digest(data.obs),
                "var": _digest(data.var),
                "obsm": {k: _digest(data.obsm[k]) for k in data.obsm},
                "varm": {k: _digest(data.varm[k]) for k in data.varm},
                "varp": {k: _digest(data.varp[k]) for k in data.varp},
                "uns": sorted(data.uns),
                "mod": {m: _fingerprint_adata(a) for m, a in data.mod.items()},
            }
            return state
        return _fingerprint_adata(data)

    return _fingerprint
