"""Real example data sets shipped inside the package."""

from __future__ import annotations

from importlib import resources

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
