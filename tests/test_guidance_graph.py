"""``mosaicvi.data.guidance_graph``: gene-peak, gene-protein and user links on real data."""

from __future__ import annotations

import gzip
import shutil
from importlib import resources
from pathlib import Path

import anndata as ad
import h5py
import mudata
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import mosaicvi
from mosaicvi.data import GuidanceGraph, guidance_graph

pytestmark = [
    pytest.mark.filterwarnings("ignore::anndata.OldFormatWarning"),
    pytest.mark.filterwarnings("ignore:The HDF5 file was not created:UserWarning"),
]

DATA = Path(__file__).parent / "data"
MUON_PBMC = DATA / "muon_pbmc_multiome_test_rna_atac.h5mu"


def _names_only(names, n_obs: int = 3, prefix: str = "cell") -> ad.AnnData:
    """AnnData with the given var_names and no counts (the graph reads only ``var``)."""
    return ad.AnnData(
        X=sp.csr_matrix((n_obs, len(names)), dtype=np.float32),
        obs=pd.DataFrame(index=[f"{prefix}{i}" for i in range(n_obs)]),
        var=pd.DataFrame(index=pd.Index(names, dtype=str)),
    )


def _pairs(graph: GuidanceGraph, a: str, b: str) -> set[tuple[str, str]]:
    """Edges between modalities a and b as (feature of a, feature of b)."""
    edges = graph.edges()
    forward = edges[(edges.source_modality == a) & (edges.target_modality == b)]
    backward = edges[(edges.source_modality == b) & (edges.target_modality == a)]
    return set(zip(forward.source, forward.target, strict=True)) | set(
        zip(backward.target, backward.source, strict=True)
    )


def _linked_genes(graph: GuidanceGraph, protein: str) -> set[str]:
    return {g for g, p in _pairs(graph, "rna", "adt") if p == protein}


def _assert_graph_shape(graph: GuidanceGraph) -> None:
    weights = graph.weights
    assert weights.shape == (graph.n_features, graph.n_features)
    assert (weights != weights.T).nnz == 0
    assert (graph.signs != graph.signs.T).nnz == 0
    np.testing.assert_array_equal(weights.diagonal(), 1.0)
    np.testing.assert_array_equal(graph.signs.diagonal(), 1)
    assert weights.data.min() > 0 and weights.data.max() <= 1.0
    assert np.array_equal(weights.indices, graph.signs.indices)


def _parse(region: str) -> tuple[str, int, int]:
    chrom, span = region.split(":")
    start, end = span.split("-")
    return chrom, int(start), int(end)


def read_legacy_h5mu(path: Path, workdir: Path) -> mudata.MuData:
    """Read an ``.h5mu`` written by muon 0.1 (2020), before modality groups carried an encoding.

    mudata 0.4 reads each ``mod/<name>`` group through anndata's IO registry, keyed on the
    group's ``encoding-type`` attribute; muon 0.1 wrote none, so anndata reads the group as a
    plain dict and mudata fails with ``TypeError: cannot create weak reference to 'dict'
    object`` (mudata 0.3 built the AnnData itself and did not look at the attribute). The
    groups' contents are already in anndata's 0.1.0 element formats, so a copy with the
    missing ``anndata`` encoding attributes reads the same with mudata 0.3 and 0.4.
    """
    copy = workdir / path.name
    shutil.copyfile(path, copy)
    with h5py.File(copy, "r+") as f:
        for group in f["mod"].values():
            group.attrs.setdefault("encoding-type", "anndata")
            group.attrs.setdefault("encoding-version", "0.1.0")
    return mudata.read_h5mu(copy)


@pytest.fixture(scope="module")
def _muon_base(tmp_path_factory) -> mudata.MuData:
    return read_legacy_h5mu(MUON_PBMC, tmp_path_factory.mktemp("muon_pbmc"))


@pytest.fixture
def muon_pbmc(_muon_base) -> mudata.MuData:
    """10x PBMC multiome test file of muon: rna 45 genes (var interval), atac 174 peaks."""
    return _muon_base.copy()


@pytest.fixture(scope="module")
def snareseq() -> mudata.MuData:
    return mosaicvi.data.snareseq()


@pytest.fixture(scope="module")
def cite_starter() -> tuple[ad.AnnData, ad.AnnData]:
    rna = ad.read_h5ad(DATA / "neurips2021_bmmc_cite_starter_rna.h5ad")
    adt = ad.read_h5ad(DATA / "neurips2021_bmmc_cite_starter_adt.h5ad")
    return rna, adt


@pytest.fixture(scope="module")
def pbmc_5k_genes() -> pd.Index:
    """The 16,581 gene symbols of the 10x 5k PBMC protein data (a full-size RNA panel)."""
    adata = ad.read_h5ad(DATA / "scvi_test_pbmc_5k_protein_v3_200cells.h5ad")
    return pd.Index(adata.var_names)


def _expected_gene_peak_pairs(genes: pd.DataFrame, peaks: pd.Index, promoter: int):
    """Brute force: peak overlaps [start, end) widened by the promoter window, strand-aware."""
    expected = set()
    for gene, row in genes.iterrows():
        up = promoter if row["strand"] in ("+", ".") else 0
        down = promoter if row["strand"] in ("-", ".") else 0
        for peak in peaks:
            chrom, start, end = _parse(peak)
            if chrom == row["chrom"] and start < row["end"] + down and end > row["start"] - up:
                expected.add((gene, peak))
    return expected


def test_muon_gene_peak_pairs_match_brute_force(muon_pbmc):
    rna = muon_pbmc["rna"]
    coordinates = pd.DataFrame(
        [_parse(i) for i in rna.var["interval"]],
        columns=["chrom", "start", "end"],
        index=rna.var_names,
    ).assign(strand=".")
    # var["interval"] has no strand: the promoter window goes on both sides of the gene.
    expected = _expected_gene_peak_pairs(coordinates, muon_pbmc["atac"].var_names, 2000)
    graph = guidance_graph(muon_pbmc, promoter=2000)
    assert _pairs(graph, "rna", "atac") == expected
    assert len(expected) == 110
    _assert_graph_shape(graph)
    edges = graph.edges()
    assert (edges.weight == 1.0).all() and (edges.sign == 1).all()
    summary = graph.summary()
    assert summary.loc["rna", "edges_atac"] == summary.loc["atac", "edges_rna"] == len(expected)
    assert summary.loc["rna", "n_linked"] + summary.loc["rna", "n_unlinked"] == 45
    # Without a promoter window fewer peaks are linked, and exactly the overlapping ones.
    narrow = guidance_graph(muon_pbmc, promoter=0, key=None)
    assert _pairs(narrow, "rna", "atac") == _expected_gene_peak_pairs(
        coordinates, muon_pbmc["atac"].var_names, 0
    )
    assert len(_pairs(narrow, "rna", "atac")) < len(expected)


def test_strand_aware_promoter_window(muon_pbmc):
    """var chrom/start/end/strand: the window goes upstream only (before start on +, after end on -)."""
    rna = muon_pbmc["rna"]
    coordinates = pd.DataFrame(
        [_parse(i) for i in rna.var["interval"]],
        columns=["chrom", "start", "end"],
        index=rna.var_names,
    )
    coordinates["strand"] = np.where(np.arange(rna.n_vars) % 2 == 0, "+", "-")
    for column in coordinates.columns:
        rna.var[column] = coordinates[column].to_numpy()
    promoter = 20_000
    graph = guidance_graph(muon_pbmc, promoter=promoter, key=None)
    expected = _expected_gene_peak_pairs(coordinates, muon_pbmc["atac"].var_names, promoter)
    assert _pairs(graph, "rna", "atac") == expected
    unstranded = _expected_gene_peak_pairs(
        coordinates.assign(strand="."), muon_pbmc["atac"].var_names, promoter
    )
    assert expected < unstranded  # the strand matters on this data


def test_extend_adds_decaying_links(muon_pbmc):
    base = guidance_graph(muon_pbmc, key=None)
    wide = guidance_graph(muon_pbmc, extend=10_000, key=None)
    near, far = _pairs(base, "rna", "atac"), _pairs(wide, "rna", "atac")
    assert near < far
    edges = wide.edges().set_index(["source", "target"])
    extra = edges[[(t, s) not in near for s, t in edges.index]]
    assert len(extra) > 0
    assert (extra.weight < 1).all() and (extra.weight >= (10_000 / 1000 + 1) ** -0.75).all()


def test_neurips_multiome_with_bundled_grch38_table():
    rna = ad.read_h5ad(DATA / "neurips2021_bmmc_multiome_starter_rna.h5ad")
    atac = ad.read_h5ad(DATA / "neurips2021_bmmc_multiome_starter_atac.h5ad")
    mdata = mudata.MuData({"rna": rna, "atac": atac})
    promoter = 2000
    graph = guidance_graph(mdata, promoter=promoter)
    _assert_graph_shape(graph)
    pairs = _pairs(graph, "rna", "atac")
    assert 20 <= len(pairs) <= 200  # 600 genes x 600 genome-wide peaks: 43 links
    # Check every edge against the shipped table, matched by Ensembl id.
    source = resources.files("mosaicvi.data") / "annotations" / "hg38_genes_ensembl93.bed.gz"
    with resources.as_file(source) as path, gzip.open(path, "rt") as handle:
        table = pd.read_csv(handle, sep="\t", header=None).set_index(6)
    for gene, peak in pairs:
        chrom, start, end, strand = table.loc[rna.var.loc[gene, "gene_ids"], [0, 1, 2, 5]]
        peak_chrom, peak_start, peak_end = peak.split("-")
        assert peak_chrom == chrom
        low = start - (promoter if strand == "+" else 0)
        high = end + (promoter if strand == "-" else 0)
        assert int(peak_start) < high and int(peak_end) > low
    assert mdata.varp["guidance"].shape == (1200, 1200)


def test_gene_coordinates_from_bed_file_with_chromosome_spellings(tmp_path):
    """BED genes on ``1``/``MT`` match peaks on ``chr1``/``chrM``; genes match by Ensembl id."""
    bed = tmp_path / "genes.bed"
    bed.write_text(
        "track name=genes\n"
        "1\t1000\t2000\tGENE_A\t0\t+\tENSG00000000001\n"
        "1\t5000\t6000\tGENE_B\t0\t-\tENSG00000000002\n"
        "MT\t100\t900\tMT-X\t0\t+\tENSG00000000003\n"
    )
    rna = _names_only(["a", "b", "mt"])
    rna.var["gene_ids"] = ["ENSG00000000001.3", "ENSG00000000002", "ENSG00000000003"]
    atac = _names_only(["chr1-500-700", "chr1-6100-6200", "chr1-4000-4500", "chrM-50-60"])
    mdata = mudata.MuData({"rna": rna, "atac": atac})
    graph = guidance_graph(mdata, gene_coordinates=bed, promoter=600, key=None)
    assert _pairs(graph, "rna", "atac") == {
        ("a", "chr1-500-700"),  # + strand: window before start
        ("b", "chr1-6100-6200"),  # - strand: window after end
        ("mt", "chrM-50-60"),
    }
    # The same coordinates as a DataFrame indexed by gene name.
    frame = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chrMT"], "start": [1000, 5000, 100], "end": [2000, 6000, 900]},
        index=["a", "b", "mt"],
    )
    unstranded = guidance_graph(mdata, gene_coordinates=frame, promoter=600, key=None)
    # No strand column: the window goes on both sides, so b now reaches the peak before it.
    assert _pairs(unstranded, "rna", "atac") == {
        ("a", "chr1-500-700"),
        ("b", "chr1-6100-6200"),
        ("b", "chr1-4000-4500"),
        ("mt", "chrM-50-60"),
    }


def test_cite_starter_panel_links(cite_starter):
    rna, adt = cite_starter
    adt = adt.copy()
    adt.var_names = adt.var_names + "_prot"
    mdata = mudata.MuData({"rna": rna, "adt": adt})
    graph = guidance_graph(mdata)
    _assert_graph_shape(graph)
    pairs = _pairs(graph, "rna", "adt")
    expected = {
        ("CD44", "CD44_prot"),
        ("CD52", "CD52_prot"),
        ("ITGAX", "CD11c_prot"),
        ("ITGA4", "CD49d_prot"),
        ("CCR2", "CD192_prot"),
        ("IL2RB", "CD122_prot"),
        ("HLA-E", "HLA-E_prot"),
    }
    assert expected <= pairs
    assert len(pairs) == 11
    # CD25 is an alias of IL2RA and ISG20; the curated table says IL2RA (not measured here), so
    # the measured ISG20 must not be guessed.
    assert "ISG20" in rna.var_names
    assert _linked_genes(graph, "CD25_prot") == set()
    assert graph.notes.loc["CD25_prot", "category"] == "gene not measured"


def test_cite_panel_against_a_full_gene_list(cite_starter, pbmc_5k_genes):
    _, adt = cite_starter
    proteins = [*adt.var_names, "Mouse-IgG1", "Rat_IgG2b_Isotype_Ctrl", "IgG2a"]
    mdata = mudata.MuData(
        {"rna": _names_only(pbmc_5k_genes), "adt": _names_only([f"{p}_prot" for p in proteins])}
    )
    with pytest.warns(UserWarning, match=r"CD32_prot \(FCGR2A, FCGR2B\)"):
        graph = guidance_graph(mdata)
    expected = {
        "CD3": {"CD3D", "CD3E", "CD3G"},
        "CD4": {"CD4"},
        "CD8": {"CD8A"},
        "CD14": {"CD14"},
        "CD16": {"FCGR3A", "FCGR3B"},
        "CD56": {"NCAM1"},
        "CD45": {"PTPRC"},
        "CD45RA": {"PTPRC"},
        "CD19": {"CD19"},
        "CD11b": {"ITGAM"},
        "HLA-DR": {"HLA-DRA", "HLA-DRB1"},
        "CD279": {"PDCD1"},
        "IgM": {"IGHM"},
        "CD20": {"MS4A1"},
    }
    for protein, genes in expected.items():
        assert _linked_genes(graph, f"{protein}_prot") == genes, protein
    for control in ("Mouse-IgG1", "Rat_IgG2b_Isotype_Ctrl", "IgG2a"):
        assert _linked_genes(graph, f"{control}_prot") == set()
        assert graph.notes.loc[f"{control}_prot", "category"] == "isotype control"
    # Ambiguous alias: reported, not guessed.
    assert _linked_genes(graph, "CD32_prot") == set()
    assert graph.notes.loc["CD32_prot", "category"] == "ambiguous alias"
    notes = graph.summary().loc["adt", "notes"]
    assert "3 isotype control" in notes and "CD32_prot: FCGR2A, FCGR2B" in notes
    stored = mdata.uns["guidance"]["notes"]
    assert stored.loc["CD32_prot", "category"] == "ambiguous alias"


@pytest.mark.parametrize(
    ("filename", "n_linked"),
    [
        ("scvi_test_pbmc_5k_protein_v3_200cells.h5ad", 28),
        ("scvi_test_pbmc_10k_protein_v3_200cells.h5ad", 14),
    ],
)
def test_10x_totalseq_b_panels(filename, n_linked):
    adata = ad.read_h5ad(DATA / filename)
    proteins = list(adata.uns["protein_names"])
    adt = ad.AnnData(
        X=sp.csr_matrix(adata.obsm["protein_expression"].astype(np.float32)),
        obs=pd.DataFrame(index=adata.obs_names),
        var=pd.DataFrame(index=proteins),
    )
    rna = ad.AnnData(X=adata.X, obs=pd.DataFrame(index=adata.obs_names), var=adata.var[[]])
    mdata = mudata.MuData({"rna": rna, "adt": adt})
    graph = guidance_graph(mdata)
    expected = {
        "CD3_TotalSeqB": {"CD3D", "CD3E", "CD3G"},
        "CD4_TotalSeqB": {"CD4"},
        "CD8a_TotalSeqB": {"CD8A"},
        "CD14_TotalSeqB": {"CD14"},
        "CD16_TotalSeqB": {"FCGR3A", "FCGR3B"},
        "CD19_TotalSeqB": {"CD19"},
        "CD25_TotalSeqB": {"IL2RA"},
        "CD45RA_TotalSeqB": {"PTPRC"},
        "CD56_TotalSeqB": {"NCAM1"},
        "CD127_TotalSeqB": {"IL7R"},
        "PD-1_TotalSeqB": {"PDCD1"},  # an alias of RPL17 as well: the curated table decides
        "TIGIT_TotalSeqB": {"TIGIT"},
    }
    for protein, genes in expected.items():
        assert _linked_genes(graph, protein) == genes & set(rna.var_names), protein
    summary = graph.summary()
    assert summary.loc["adt", "n_linked"] == n_linked
    assert summary.loc["adt", "n_features"] == len(proteins)


def test_user_protein_map_takes_precedence(pbmc_5k_genes):
    proteins = ["CD16_TotalSeqB", "CD32_TotalSeqB", "CD4_TotalSeqB", "CD3_TotalSeqB"]
    mdata = mudata.MuData({"rna": _names_only(pbmc_5k_genes), "adt": _names_only(proteins)})
    with pytest.warns(UserWarning, match="no ADT modality has"):
        graph = guidance_graph(
            mdata,
            protein_to_gene={
                "CD16": "FCGR3A",  # normalised key
                "CD32_TotalSeqB": ["FCGR2A"],  # raw name resolves the ambiguous alias
                "CD4": None,  # no link
                "CD999": "XYZ",
            },
            key=None,
        )
    assert _linked_genes(graph, "CD16_TotalSeqB") == {"FCGR3A"}
    assert _linked_genes(graph, "CD32_TotalSeqB") == {"FCGR2A"}
    assert _linked_genes(graph, "CD4_TotalSeqB") == set()
    assert graph.notes.loc["CD4_TotalSeqB", "category"] == "no link requested"
    assert _linked_genes(graph, "CD3_TotalSeqB") == {"CD3D", "CD3E", "CD3G"}


def test_duplicate_suffixes_and_protein_name_spellings():
    genes = ["CD3D", "CD3E", "CD3G", "CD4", "PDCD1", "RPL17", "PECAM1", "CD8A"]
    proteins = ["CD3-1", "CD3.2", "cd4_prot", "PD-1", "CD31-TotalSeqA", "CD8a_protein"]
    mdata = mudata.MuData({"rna": _names_only(genes), "adt": _names_only(proteins)})
    graph = guidance_graph(mdata, key=None)
    assert _linked_genes(graph, "CD3-1") == {"CD3D", "CD3E", "CD3G"}  # not CD31
    assert _linked_genes(graph, "CD3.2") == {"CD3D", "CD3E", "CD3G"}
    assert _linked_genes(graph, "cd4_prot") == {"CD4"}
    assert _linked_genes(graph, "PD-1") == {"PDCD1"}
    assert _linked_genes(graph, "CD31-TotalSeqA") == {"PECAM1"}
    assert _linked_genes(graph, "CD8a_protein") == {"CD8A"}


def test_user_link_matrix_snareseq(snareseq):
    mdata = snareseq.copy()
    link = sp.csr_matrix(mdata["rna"].varm["gene_region_link"])
    graph = guidance_graph(mdata, links={("rna", "atac"): link})
    _assert_graph_shape(graph)
    rows, cols = link.nonzero()
    expected = set(zip(mdata["rna"].var_names[rows], mdata["atac"].var_names[cols], strict=True))
    assert _pairs(graph, "rna", "atac") == expected
    assert len(expected) == link.nnz == 25734
    assert graph.summary().loc["rna", "edges_atac"] == link.nnz
    with pytest.raises(ValueError, match=r"transpose it with `\.T`"):
        guidance_graph(mdata, links={("rna", "atac"): link.T}, key=None)


def test_user_edge_list_with_signs(muon_pbmc):
    peak = muon_pbmc["atac"].var_names[0]
    links = pd.DataFrame(
        {
            "source": ["CD14", "LYZ", "LYZ"],
            "target": ["LYZ", peak, "CD14"],
            "weight": [0.8, 0.5, 0.3],
            "sign": [-1, 1, -1],
        }
    )
    graph = guidance_graph(muon_pbmc, links=links, key="prior")
    _assert_graph_shape(graph)
    edges = graph.edges()
    assert len(edges) == 2  # CD14-LYZ given twice: the larger weight wins
    cd14_lyz = edges[edges.source.isin(["CD14", "LYZ"]) & edges.target.isin(["CD14", "LYZ"])]
    assert cd14_lyz.weight.tolist() == [pytest.approx(0.8)] and cd14_lyz.sign.tolist() == [-1]
    assert graph.summary().loc["rna", "edges_rna"] == 1
    stored = muon_pbmc.varp["prior"]
    i, j = muon_pbmc.var_names.get_indexer(["CD14", "LYZ"])
    assert stored[i, j] == stored[j, i] == pytest.approx(-0.8)
    # The edge list covers (rna, atac) as well, so no built-in gene-peak links there.
    assert _pairs(graph, "rna", "atac") == {("LYZ", peak)}
    with pytest.raises(ValueError, match=r"target names are not features.*'nope'"):
        guidance_graph(muon_pbmc, links=links.assign(target=["nope", peak, "CD14"]), key=None)


def test_stored_in_mudata_var_order_and_round_trip(muon_pbmc, tmp_path):
    # mdata.mod is atac then rna; the model order asked for is rna then atac.
    assert list(muon_pbmc.mod) == ["atac", "rna"]
    graph = guidance_graph(muon_pbmc, {"rna": "rna", "atac": "atac"})
    assert list(graph.feature_names[:45]) == list(muon_pbmc["rna"].var_names)
    assert graph.modality_of_feature["CD14"] == "rna"
    positions = muon_pbmc.var_names.get_indexer(graph.feature_names)
    stored = sp.csr_matrix(muon_pbmc.varp["guidance"])
    assert (stored[positions][:, positions] != graph.signed()).nnz == 0
    assert list(muon_pbmc.uns["guidance"]["modalities"]) == ["rna", "atac"]
    path = tmp_path / "pbmc.h5mu"
    muon_pbmc.write_h5mu(path)
    again = GuidanceGraph.from_mudata(mudata.read_h5mu(path))
    assert list(again.feature_names) == list(graph.feature_names)
    assert (again.weights != graph.weights).nnz == 0
    assert (again.signs != graph.signs).nnz == 0
    assert again.summary().drop(columns="notes").equals(graph.summary().drop(columns="notes"))


def _assert_untouched(mdata: mudata.MuData) -> None:
    assert "guidance" not in mdata.varp
    assert "guidance" not in mdata.uns


def test_no_overlap_error_shows_both_sides(muon_pbmc):
    atac = muon_pbmc["atac"]
    atac.var_names = [name.replace(name.split(":")[0], "chr22") for name in atac.var_names]
    muon_pbmc.update()
    with pytest.raises(ValueError, match="No gene-peak pair overlaps") as error:
        guidance_graph(muon_pbmc)
    message = str(error.value)
    assert "share no chromosome" in message
    assert "CDC14A" in message and "chr22:100350982-100353664" in message
    _assert_untouched(muon_pbmc)


def test_unknown_chromosome_spelling(muon_pbmc):
    atac = muon_pbmc["atac"]
    atac.var_names = ["chromosome" + name.removeprefix("chr") for name in atac.var_names]
    muon_pbmc.update()
    with pytest.raises(ValueError, match=r"share no chromosome.*'chromosome1'"):
        guidance_graph(muon_pbmc)
    _assert_untouched(muon_pbmc)


def test_unparseable_peak_names(muon_pbmc):
    atac = muon_pbmc["atac"]
    atac.var_names = [f"peak{i}" for i in range(atac.n_vars)]
    muon_pbmc.update()
    with pytest.raises(ValueError, match=r"Cannot read the peak coordinates.*'peak0'"):
        guidance_graph(muon_pbmc)
    _assert_untouched(muon_pbmc)


def test_duplicate_feature_names_across_modalities(cite_starter):
    rna, adt = cite_starter
    mdata = mudata.MuData({"rna": rna, "adt": adt})
    with pytest.raises(ValueError, match=r"repeat .*'CD52'.*_prot"):
        guidance_graph(mdata)
    _assert_untouched(mdata)


def test_failure_keeps_an_earlier_graph(muon_pbmc):
    first = guidance_graph(muon_pbmc)
    stored = muon_pbmc.varp["guidance"].copy()
    with pytest.raises(ValueError, match="non-negative"):
        guidance_graph(muon_pbmc, promoter=-5)
    with pytest.raises(ValueError, match="not among the modalities"):
        guidance_graph(muon_pbmc, links={("rna", "adt"): np.zeros((45, 3))})
    with pytest.raises(ValueError, match="No gene of"):
        guidance_graph(
            muon_pbmc,
            gene_coordinates=pd.DataFrame(
                {"chrom": ["chr1"], "start": [0], "end": [10]}, index=["not_a_gene"]
            ),
        )
    assert (muon_pbmc.varp["guidance"] != stored).nnz == 0
    assert first.summary().equals(muon_pbmc.uns["guidance"]["summary"])


def test_other_kinds_get_self_loops_only(muon_pbmc):
    graph = guidance_graph(muon_pbmc, {"rna": "counts", "atac": "counts"}, key=None)
    assert graph.weights.nnz == graph.n_features
    assert (graph.summary()["n_linked"] == 0).all()
    none = guidance_graph(muon_pbmc, gene_coordinates=None, key=None)
    assert none.weights.nnz == none.n_features
