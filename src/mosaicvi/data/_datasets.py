"""Real example data sets shipped inside the package."""

from __future__ import annotations

from importlib import resources

import anndata
import mudata


def snareseq() -> mudata.MuData:
    """SNARE-seq adult mouse cortex, RNA + ATAC in the same 10,309 cells.

    Chen, Lake & Zhang, Nat Biotechnol 2019 (GEO GSE126074), as preprocessed by scMoMaT (MIT).
    12 samples in ``obs["batch"]`` (09A-09L), 23 cell types in ``obs["cell_type"]`` and 15 in
    ``obs["cell_type_coarse"]``. ``rna``: 1,677 genes; ``atac``: 25,734 mm10 peaks (``var``
    chrom/start/end); raw counts in ``X``. ``rna.varm["gene_region_link"]`` links genes to peaks.
    See ``mosaicvi/data/datasets/README.md`` for provenance.

    Returns
    -------
    A new, fully paired MuData (read from the file each call).

    Examples
    --------
    >>> import mosaicvi
    >>> mdata = mosaicvi.data.snareseq()
    >>> mdata.shape
    (10309, 27411)
    """
    source = resources.files("mosaicvi.data") / "datasets" / "snareseq_chen2019_mouse_cortex.h5mu"
    with resources.as_file(source) as path:
        return mudata.read_h5mu(path)


#: File stem of each part of the NeurIPS 2021 BMMC starter data.
BMMC_STARTER_FILES = {
    "multiome_rna": "neurips2021_bmmc_multiome_starter_rna",
    "multiome_atac": "neurips2021_bmmc_multiome_starter_atac",
    "cite_rna": "neurips2021_bmmc_cite_starter_rna",
    "cite_adt": "neurips2021_bmmc_cite_starter_adt",
}


def neurips2021_bmmc_starter() -> dict[str, anndata.AnnData]:
    """Small human bone marrow (BMMC) starter files of the NeurIPS 2021 multimodal challenge.

    Two assays of the same donor samples (``obs["batch"]`` s1d1, s1d2), in disjoint cells:

    - ``multiome_rna`` (500 cells x 600 genes) and ``multiome_atac`` (500 x 600 GRCh38 peaks,
      named ``chr1-1677585-1678477``): 10x Multiome, the same cells in the same order;
    - ``cite_rna`` (600 x 1000 genes) and ``cite_adt`` (600 x 134 proteins of the TotalSeq-B
      panel): CITE-seq, the same cells in the same order.

    ``X`` holds the challenge's normalised values; **raw counts are in** ``layers["counts"]``.
    ``obs["cell_type"]`` has the challenge's annotation (12 types in the multiome part, 41 finer
    ones in the CITE part). The two RNA panels share 76 genes. Luecken et al., NeurIPS Datasets
    and Benchmarks 2021 (GEO GSE194122); files from openproblems-bio/neurips2021_multimodal_viash
    (MIT), unchanged; see ``mosaicvi/data/datasets/README.md``.

    Returns
    -------
    ``{"multiome_rna", "multiome_atac", "cite_rna", "cite_adt"}`` -> a new AnnData each call.

    Examples
    --------
    >>> import mosaicvi
    >>> parts = mosaicvi.data.neurips2021_bmmc_starter()
    >>> {name: adata.shape for name, adata in parts.items()}
    {'multiome_rna': (500, 600), 'multiome_atac': (500, 600), 'cite_rna': (600, 1000), 'cite_adt': (600, 134)}
    """
    folder = resources.files("mosaicvi.data") / "datasets"
    parts = {}
    for name, stem in BMMC_STARTER_FILES.items():
        with resources.as_file(folder / f"{stem}.h5ad") as path:
            parts[name] = anndata.read_h5ad(path)
    return parts
