"""GLUE (scglue, Cao & Gao 2022) baseline for the diagonal (unpaired) SNARE-seq benchmark.

Needs ``scglue`` (tested with 0.4.1, which installs from PyPI next to anndata 0.12, scanpy 1.11,
numpy 2 and torch 2.13 without changing any of them). Only ``scglue.models`` / ``scglue.data`` are
used: the guidance graph is built here from a supplied gene x peak link matrix, so no ``bedtools``
binary is needed.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import networkx as nx
import numpy as np
import scanpy as sc
import scipy.sparse as sp
import torch
from anndata import AnnData
from sklearn.preprocessing import normalize
from sklearn.utils.extmath import randomized_svd

_EPOCH_RE = re.compile(r"^\[Epoch (\d+)\]")


def guidance_graph(
    rna_var_names: list[str] | np.ndarray,
    atac_var_names: list[str] | np.ndarray,
    gene_peak_links: sp.spmatrix | sp.sparray,
) -> nx.MultiDiGraph:
    """GLUE guidance graph from a gene x peak link matrix, without bedtools.

    Mirrors the output of :func:`scglue.genomics.rna_anchored_guidance_graph`: one
    ``weight=1, sign=1`` edge per link in each direction (``type`` ``"fwd"`` gene -> peak,
    ``"rev"`` peak -> gene) and a ``weight=1, sign=1, type="loop"`` self-loop on every feature.

    Parameters
    ----------
    rna_var_names
        Gene names, in the row order of ``gene_peak_links``.
    atac_var_names
        Peak names, in the column order of ``gene_peak_links``.
    gene_peak_links
        Genes x peaks sparse matrix; every stored nonzero entry is a link.

    Returns
    -------
    nx.MultiDiGraph
        The guidance graph over all genes and peaks.
    """
    genes = np.asarray(rna_var_names).astype(str)
    peaks = np.asarray(atac_var_names).astype(str)
    if np.intersect1d(genes, peaks).size:
        raise ValueError("Gene and peak names overlap; GLUE needs distinct feature names.")
    links = sp.coo_matrix(gene_peak_links)
    if links.shape != (genes.size, peaks.size):
        raise ValueError(
            f"gene_peak_links has shape {links.shape}, expected {(genes.size, peaks.size)}."
        )
    keep = links.data != 0
    rows, cols = links.row[keep], links.col[keep]
    graph = nx.MultiDiGraph()
    graph.add_nodes_from(genes)
    graph.add_nodes_from(peaks)
    attrs = {"weight": 1.0, "sign": 1}
    graph.add_edges_from(
        (g, p, {**attrs, "type": "fwd"}) for g, p in zip(genes[rows], peaks[cols], strict=True)
    )
    graph.add_edges_from(
        (p, g, {**attrs, "type": "rev"}) for g, p in zip(genes[rows], peaks[cols], strict=True)
    )
    graph.add_edges_from((v, v, {**attrs, "type": "loop"}) for v in (*genes, *peaks))
    return graph


def _counts(adata: AnnData) -> sp.csr_matrix:
    """``adata.X`` as a float32 ``csr_matrix`` (scglue's TF-IDF needs the spmatrix API)."""
    return sp.csr_matrix(adata.X, dtype=np.float32)


class _RnaPca:
    """Tutorial RNA preprocessing (normalize_total, log1p, scale, PCA) fitted on training cells."""

    def __init__(self, train: AnnData, n_comps: int, seed: int) -> None:
        x = _counts(train)
        self.target_sum = float(np.median(np.asarray(x.sum(axis=1)).ravel()))
        ad = AnnData(x)
        sc.pp.normalize_total(ad, target_sum=self.target_sum)
        sc.pp.log1p(ad)
        sc.pp.scale(ad)
        self.mean = ad.var["mean"].to_numpy()
        std = ad.var["std"].to_numpy().copy()
        std[std == 0] = 1.0
        self.std = std
        sc.pp.pca(ad, n_comps=n_comps, svd_solver="auto", random_state=seed)
        self.components = np.asarray(ad.varm["PCs"])  # genes x comps
        self.center = np.asarray(ad.X).mean(axis=0)  # ~0 after scaling; PCA re-centres
        # Exact projection (not scanpy's X_pca, which for the approximate solver differs slightly
        # in the trailing components) so a training cell gets the same input in ``transform``.
        self.train_rep = self.transform(train)

    def transform(self, adata: AnnData) -> np.ndarray:
        x = _counts(adata)
        size = np.asarray(x.sum(axis=1)).ravel()
        size[size == 0] = 1.0
        x = sp.diags(self.target_sum / size) @ x
        x = np.log1p(x.toarray())
        x = (x - self.mean) / self.std
        return ((x - self.center) @ self.components).astype(np.float32)


class _AtacLsi:
    """:func:`scglue.data.lsi` (Seurat v3 TF-IDF + randomized SVD) keeping IDF and loadings."""

    def __init__(self, train: AnnData, n_comps: int, n_iter: int, seed: int) -> None:
        x = _counts(train)
        col = np.asarray(x.sum(axis=0)).ravel()
        col[col == 0] = np.inf  # peaks never seen in training contribute 0
        self.idf = x.shape[0] / col
        _, s, vt = randomized_svd(self._norm(x), n_comps, n_iter=n_iter, random_state=seed)
        self.s, self.vt = s, vt
        self.train_rep = self.transform(train)  # == scglue.data.lsi's X_lsi up to ~1e-5

    def _norm(self, x: sp.csr_matrix) -> sp.csr_matrix:
        row = np.asarray(x.sum(axis=1)).ravel()
        row[row == 0] = 1.0
        tfidf = sp.diags(1 / row) @ x @ sp.diags(self.idf)
        out = normalize(sp.csr_matrix(tfidf), norm="l1")
        out.data = np.log1p(out.data * 1e4)
        return out

    @staticmethod
    def _standardize(u: np.ndarray) -> np.ndarray:
        u = u - u.mean(axis=1, keepdims=True)
        return (u / u.std(axis=1, ddof=1, keepdims=True)).astype(np.float32)

    def transform(self, adata: AnnData) -> np.ndarray:
        u = np.asarray(self._norm(_counts(adata)) @ self.vt.T) / self.s
        return self._standardize(u)


def _rna_input(adata: AnnData, rep: np.ndarray, batch_key: str) -> AnnData:
    out = AnnData(_counts(adata), obs=adata.obs[[batch_key]].copy(), var=adata.var[[]].copy())
    out.layers["counts"] = out.X.copy()
    out.var["highly_variable"] = True
    out.obsm["X_pca"] = rep
    return out


def _atac_input(adata: AnnData, rep: np.ndarray, batch_key: str) -> AnnData:
    out = AnnData(_counts(adata), obs=adata.obs[[batch_key]].copy(), var=adata.var[[]].copy())
    out.var["highly_variable"] = True
    out.obsm["X_lsi"] = rep
    return out


class _EpochCounter(logging.Handler):
    """Records the epoch numbers scglue's trainer logs (``[Epoch N] ...``)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.runs: list[int] = []  # last epoch of each ``fit`` call (pretrain, fine-tune)
        self._last = 0

    def emit(self, record: logging.LogRecord) -> None:
        match = _EPOCH_RE.match(record.getMessage())
        if match is None:
            return
        epoch = int(match.group(1))
        if epoch <= self._last:  # a new ``fit`` started
            self.runs.append(self._last)
        self._last = epoch

    def finish(self) -> list[int]:
        return [*self.runs, self._last]


def glue_embeddings(
    train_rna: AnnData,
    train_atac: AnnData,
    all_rna: AnnData,
    all_atac: AnnData,
    gene_peak_links: sp.spmatrix | sp.sparray,
    batch_key: str = "batch",
    seed: int = 0,
    max_epochs: int | None = None,
    n_comps: int = 100,
    fit_kws: Mapping[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train GLUE on unpaired RNA and ATAC cells and embed every cell's RNA and ATAC.

    Follows the official scglue tutorials (stage 1 preprocessing, stage 2 training), except that
    all genes are used (every gene is marked ``highly_variable``), the guidance graph is built
    from ``gene_peak_links`` by :func:`guidance_graph` (unit weights, no bedtools), and both
    modalities are batch-corrected with ``use_batch=batch_key``.

    *RNA*: ``counts`` layer, ``normalize_total`` (to the training median size), ``log1p``,
    ``scale``, PCA -> ``X_pca``; ``configure_dataset(rna, "NB", use_highly_variable=True,
    use_layer="counts", use_rep="X_pca", use_batch=batch_key)``.
    *ATAC*: the :func:`scglue.data.lsi` computation (``n_iter=15``) -> ``X_lsi``;
    ``configure_dataset(atac, "NB", use_highly_variable=True, use_rep="X_lsi",
    use_batch=batch_key)``.

    Fairness of the held-out embeddings: GLUE's encoders read only the ``use_rep`` input, so the
    PCA (scaling means/SDs, size-factor target, loadings) and the LSI (IDF, SVD loadings) are fitted
    on the *training* cells only and ``all_rna`` / ``all_atac`` are projected with those fitted
    transforms (new cells' LSI coordinates are ``X_norm V S^-1``, then row-standardised as in
    ``scglue.data.lsi``). Training cells get the same representation in both places, and no
    statistic sees a held-out cell's hidden modality. (The training cells' ``X_pca`` is this exact
    projection rather than scanpy's approximate-solver ``X_pca``; ``X_lsi`` equals
    ``scglue.data.lsi``'s to ~1e-5.)

    torch's intra-op thread count is reset to its value on entry after the scanpy steps: scanpy's
    numba kernels (``omp`` threading layer) otherwise raise it to the core count despite
    ``OMP_NUM_THREADS``, and on a busy machine OpenMP barrier waits then make epochs several
    times slower.

    Parameters
    ----------
    train_rna
        Raw-count RNA of the RNA-only training cells.
    train_atac
        Raw-count ATAC (peak) counts of the ATAC-only training cells.
    all_rna
        Raw-count RNA of every cell to embed (same ``var`` as ``train_rna``).
    all_atac
        Raw-count ATAC of every cell to embed (same ``var`` as ``train_atac``).
    gene_peak_links
        Genes x peaks sparse matrix (rows in ``train_rna.var`` order, columns in
        ``train_atac.var`` order); nonzero entries are gene-peak links.
    batch_key
        Column of ``.obs`` holding the batch, passed to ``configure_dataset(use_batch=...)``.
    seed
        Random seed of GLUE (``init_kws={"random_seed": seed}``), the PCA and the LSI.
    max_epochs
        Passed to GLUE's ``fit`` (pretraining and fine-tuning each) when given; ``None`` keeps
        GLUE's data-size-dependent default (with early stopping). Note GLUE's automatic
        ``align_burnin`` (~56 epochs for 10k cells) is not shortened; pass ``fit_kws`` for that.
    n_comps
        Number of PCA / LSI components (tutorial: 100).
    fit_kws
        Extra keyword arguments for GLUE's ``fit`` (e.g. ``{"align_burnin": 5}``).

    Returns
    -------
    z_rna_all
        ``(all_rna.n_obs, 50)`` GLUE RNA-encoder means.
    z_atac_all
        ``(all_atac.n_obs, 50)`` GLUE ATAC-encoder means.
    info
        ``{"seconds": training wall time (pretrain + balancing + fine-tune), "epochs": epochs run
        in total, "epochs_pretrain", "epochs_finetune", "preprocess_seconds", "version"}``.
    """
    import scglue

    if not np.array_equal(train_rna.var_names, all_rna.var_names):
        raise ValueError("train_rna and all_rna must share var.")
    if not np.array_equal(train_atac.var_names, all_atac.var_names):
        raise ValueError("train_atac and all_atac must share var.")

    t0 = time.perf_counter()
    n_threads = torch.get_num_threads()
    pca = _RnaPca(train_rna, n_comps, seed)
    lsi = _AtacLsi(train_atac, n_comps, n_iter=15, seed=seed)
    # scanpy's numba kernels (omp threading layer) call omp_set_num_threads(NUMBA_NUM_THREADS),
    # which silently raises torch's intra-op threads past OMP_NUM_THREADS; put it back.
    torch.set_num_threads(n_threads)
    rna = _rna_input(train_rna, pca.train_rep, batch_key)
    atac = _atac_input(train_atac, lsi.train_rep, batch_key)
    scglue.models.configure_dataset(
        rna,
        "NB",
        use_highly_variable=True,
        use_layer="counts",
        use_rep="X_pca",
        use_batch=batch_key,
    )
    scglue.models.configure_dataset(
        atac, "NB", use_highly_variable=True, use_rep="X_lsi", use_batch=batch_key
    )
    graph = guidance_graph(rna.var_names, atac.var_names, gene_peak_links)
    preprocess_seconds = time.perf_counter() - t0

    counter = _EpochCounter()
    trainer_logger = logging.getLogger("SCGLUETrainer")
    old_interval = scglue.config.PRINT_LOSS_INTERVAL
    scglue.config.PRINT_LOSS_INTERVAL = 1  # log every epoch so the counter sees the last one
    trainer_logger.addHandler(counter)
    try:
        with tempfile.TemporaryDirectory(prefix="glue_") as tmpdir:
            kws: dict[str, Any] = {"directory": os.path.join(tmpdir, "glue")}
            if max_epochs is not None:
                kws["max_epochs"] = int(max_epochs)
            kws.update(fit_kws or {})
            t1 = time.perf_counter()
            model = scglue.models.fit_SCGLUE(
                {"rna": rna, "atac": atac},
                graph,
                init_kws={"random_seed": seed},
                fit_kws=kws,
            )
            seconds = time.perf_counter() - t1
        rna_all = _rna_input(all_rna, pca.transform(all_rna), batch_key)
        atac_all = _atac_input(all_atac, lsi.transform(all_atac), batch_key)
        torch.set_num_threads(n_threads)
        z_rna = model.encode_data("rna", rna_all)
        z_atac = model.encode_data("atac", atac_all)
    finally:
        trainer_logger.removeHandler(counter)
        scglue.config.PRINT_LOSS_INTERVAL = old_interval
    epochs = counter.finish()

    info = {
        "seconds": seconds,
        "epochs": int(sum(epochs)),
        "epochs_pretrain": int(epochs[0]) if epochs else 0,
        "epochs_finetune": int(epochs[-1]) if len(epochs) > 1 else 0,
        "preprocess_seconds": preprocess_seconds,
        "version": scglue.__version__,
    }
    return z_rna, z_atac, info
