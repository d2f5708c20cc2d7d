"""Bundled gene tables (human GRCh38, mouse GRCm38) and the choice of ``gene_coordinates``."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mosaicvi
from mosaicvi.data import guidance_graph
from mosaicvi.data._genomic import bundled_gene_table

pytestmark = [
    pytest.mark.filterwarnings("ignore::anndata.OldFormatWarning"),
    pytest.mark.filterwarnings("ignore:The HDF5 file was not created:UserWarning"),
]

DATA = Path(__file__).parent / "data"
GENOMIC_LOGGER = "mosaicvi.data._genomic"


@pytest.fixture(scope="module")
def snareseq() -> mudata.MuData:
    return mosaicvi.data.snareseq()


@pytest.fixture(scope="module")
def bmmc_multiome() -> mudata.MuData:
    rna = ad.read_h5ad(DATA / "neurips2021_bmmc_multiome_starter_rna.h5ad")
    atac = ad.read_h5ad(DATA / "neurips2021_bmmc_multiome_starter_atac.h5ad")
    return mudata.MuData({"rna": rna, "atac": atac})


def _graph_and_choice(mdata: mudata.MuData, caplog) -> tuple:
    """``guidance_graph(mdata)`` under "auto", and its one log line naming the table it chose."""
    with caplog.at_level(logging.INFO, logger=GENOMIC_LOGGER):
        graph = guidance_graph(mdata, key=None)
    chosen = [r.getMessage() for r in caplog.records if r.name == GENOMIC_LOGGER]
    assert len(chosen) == 1
    return graph, chosen[0]


def _gene_peak_links(graph, mdata: mudata.MuData) -> sp.coo_matrix:
    """The RNA x ATAC block of the graph (both modalities in that order)."""
    n_genes = mdata["rna"].n_vars
    return graph.weights.tocsr()[:n_genes, n_genes:].tocoo()


@pytest.mark.parametrize(
    ("genome", "n_genes", "chroms", "gene", "locus"),
    [
        ("GRCh38", 58336, 25, "GAPDH", ("chr12", 6533926, 6538374, "+")),
        ("GRCm38", 55401, 22, "Gapdh", ("chr6", 125161714, 125166467, "-")),
    ],
)
def test_bundled_tables(genome, n_genes, chroms, gene, locus):
    table = bundled_gene_table(genome)
    assert len(table) == n_genes
    assert table["chrom"].nunique() == chroms  # primary chromosomes only
    assert (table["start"] < table["end"]).all()
    row = table[table["name"] == gene].iloc[0]
    assert (row["chrom"], row["start"], row["end"], row["strand"]) == locus


def test_snareseq_auto_picks_the_mouse_table(snareseq, caplog):
    """Mouse gene symbols, mm10 peaks: "auto" takes GRCm38 and links most genes to peaks."""
    graph, chosen = _graph_and_choice(snareseq, caplog)
    assert "bundled GRCm38 table" in chosen
    assert "GRCm38 1656 of 1677" in chosen and "GRCh38 1 of 1677" in chosen
    links = _gene_peak_links(graph, snareseq)
    assert links.nnz > 20_000  # 25,361
    assert len(np.unique(links.row)) > 1600  # 1,652 of 1,677 genes
    # Nearly all of scMoMaT's gene-peak links (peaks assigned to genes by the authors) are found
    # from coordinates alone; the missing ones are mostly of the 21 genes the table lacks.
    shipped = sp.coo_matrix(snareseq["rna"].varm["gene_region_link"])
    found = set(zip(links.row.tolist(), links.col.tolist(), strict=True))
    overlap = sum((r, c) in found for r, c in zip(shipped.row, shipped.col, strict=True))
    assert overlap / shipped.nnz > 0.97  # 25,289 of 25,734
    assert (graph.notes["category"] == "no coordinates").sum() == 21


def test_mouse_genome_aliases(snareseq):
    grcm38 = guidance_graph(snareseq, gene_coordinates="GRCm38", key=None)
    for alias in ("mm10", "grcm38"):
        other = guidance_graph(snareseq, gene_coordinates=alias, key=None)
        assert (other.weights != grcm38.weights).nnz == 0
    auto = guidance_graph(snareseq, key=None)
    assert (auto.weights != grcm38.weights).nnz == 0


def test_human_data_still_picks_grch38(bmmc_multiome, caplog):
    auto, chosen = _graph_and_choice(bmmc_multiome, caplog)
    assert "bundled GRCh38 table" in chosen
    assert "GRCh38 599 of 600" in chosen and "GRCm38 0 of 600" in chosen
    for name in ("GRCh38", "hg38"):
        named = guidance_graph(bmmc_multiome, gene_coordinates=name, key=None)
        assert (named.weights != auto.weights).nnz == 0
    assert _gene_peak_links(auto, bmmc_multiome).nnz == 43


@pytest.mark.parametrize("name", ["GRCm39", "hg19", "mouse"])
def test_unknown_genome_name_lists_the_accepted_ones(snareseq, name):
    with pytest.raises(ValueError, match=rf"'{name}'.* neither 'auto'") as error:
        guidance_graph(snareseq, gene_coordinates=name, key=None)
    for accepted in ("'GRCh38'", "'hg38'", "'GRCm38'", "'mm10'", "BED file"):
        assert accepted in str(error.value)


def test_auto_refuses_when_no_table_fits():
    """Genes neither table knows: a clear error naming the match counts, not a bad guess."""
    n_obs = 3
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(n_obs)])
    genes = [f"made_up_{i}" for i in range(20)] + ["Gapdh"]  # 1 of 21 genes is mouse
    peaks = ["chr6-125161000-125162000", "chr1-100-200"]
    mdata = mudata.MuData(
        {
            name: ad.AnnData(
                X=sp.csr_matrix((n_obs, len(features)), dtype=np.float32),
                obs=obs,
                var=pd.DataFrame(index=features),
            )
            for name, features in (("rna", genes), ("atac", peaks))
        }
    )
    with pytest.raises(ValueError, match="no bundled gene table matches enough") as error:
        guidance_graph(mdata, key=None)
    assert "GRCh38 0 of 21, GRCm38 1 of 21" in str(error.value)
    assert "guidance" not in mdata.uns
    # Named explicitly, the table is used anyway (with a warning about the few genes placed).
    with pytest.warns(UserWarning, match="Only 1 of 21 genes"):
        graph = guidance_graph(mdata, gene_coordinates="mm10", key=None)
    assert _gene_peak_links(graph, mdata).nnz == 1
