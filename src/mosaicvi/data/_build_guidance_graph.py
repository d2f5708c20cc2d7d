"""Build the guidance graph of a MuData: built-in gene-peak/gene-protein rules plus user links."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from mosaicvi.data._genomic import gene_regions, gene_symbols
from mosaicvi.data._intervals import DECAY_POWER, DECAY_SCALE, link_genes_to_peaks, peak_regions
from mosaicvi.data._mosaic_layout import resolve_kinds
from mosaicvi.data._protein_names import link_proteins_to_genes, protein_key

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    from mudata import MuData

    LinkSpec = sp.spmatrix | sp.sparray | np.ndarray | pd.DataFrame
from mosaicvi.data._guidance_graph import (
    NO_COORDINATES,
    GuidanceGraph,
    _feature_table,
    _global_positions,
)
from mosaicvi.data._user_links import user_links


def _check_distance(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative whole number of bp, not {value!r}.")
    return int(value)


def _combine(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n: int
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Symmetric weights / signs from signed edge triples plus unit self-loops.

    An edge given more than once (in either direction) keeps its largest weight.
    """
    rows = [p[0] for p in parts] + [p[1] for p in parts]
    cols = [p[1] for p in parts] + [p[0] for p in parts]
    values = [p[2] for p in parts] * 2
    row = np.concatenate([*rows, np.arange(n)]).astype(np.int64)
    col = np.concatenate([*cols, np.arange(n)]).astype(np.int64)
    value = np.concatenate([*values, np.ones(n)]).astype(np.float64)
    off_diagonal = row != col
    off_diagonal[-n:] = True  # keep the self-loops themselves, drop user diagonal entries
    row, col, value = row[off_diagonal], col[off_diagonal], value[off_diagonal]
    order = np.lexsort((-np.abs(value), col, row))
    row, col, value = row[order], col[order], value[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
    row, col, value = row[first], col[first], value[first]
    weights = sp.csr_matrix((np.abs(value).astype(np.float32), (row, col)), shape=(n, n))
    signs = sp.csr_matrix((np.sign(value).astype(np.int8), (row, col)), shape=(n, n))
    weights.sort_indices()
    signs.sort_indices()
    return weights, signs


def _no_overlap_error(
    mdata: MuData, rna: str, atac: str, genes: pd.DataFrame, peaks: pd.DataFrame, source: str
) -> ValueError:
    symbols = gene_symbols(mdata.mod[rna])
    first = genes.drop_duplicates("feature").head(3)
    gene_examples = [
        f"{symbols[f]} ({c}:{int(s)}-{int(e)})"
        for f, c, s, e in zip(
            first["feature"], first["chrom_name"], first["start"], first["end"], strict=True
        )
    ]
    peak_examples = mdata.mod[atac].var_names[:3].tolist()
    if not set(genes["chrom"]) & set(peaks["chrom"].dropna()):
        gene_chroms = list(dict.fromkeys(genes["chrom_name"]))[:6]
        peak_chroms = list(dict.fromkeys(peaks["chrom_name"].dropna()))[:6]
        reason = (
            "genes and peaks share no chromosome (compared without 'chr' prefixes, chrM = chrMT): "
            f"genes on {gene_chroms}, peaks on {peak_chroms}"
        )
    else:
        reason = "no peak lies in or near any gene"
    return ValueError(
        f"No gene-peak pair overlaps between mdata.mod[{rna!r}] and mdata.mod[{atac!r}]: {reason}. "
        f"Genes (coordinates from {source}) e.g. {gene_examples}; peaks e.g. {peak_examples}. "
        "Check that both use the same genome assembly and chromosome naming, pass "
        "`gene_coordinates=` for this genome, or widen `promoter=` / `extend=`."
    )


def guidance_graph(
    mdata: MuData,
    modalities: Mapping[str, str] | Sequence[str] | None = None,
    *,
    gene_coordinates: str | os.PathLike | pd.DataFrame | None = "auto",
    promoter: int = 2000,
    extend: int = 0,
    protein_to_gene: str | Mapping[str, str | Sequence[str] | None] | None = "auto",
    links: Mapping[tuple[str, str], LinkSpec] | pd.DataFrame | None = None,
    key: str | None = "guidance",
) -> GuidanceGraph:
    """Build a prior-knowledge feature graph linking genes, peaks and proteins across modalities.

    Nodes are all features of the chosen modalities, in model order (modality by modality, each
    in ``var`` order). Edges are symmetric, weighted and signed:

    - **gene - peak** (RNA x ATAC): a peak overlapping the gene body extended by ``promoter`` bp
      upstream of the TSS (before ``start`` on the ``+`` strand, after ``end`` on the ``-``
      strand; on both sides when the strand is unknown) gets weight 1, sign +1. With
      ``extend > 0``, peaks up to ``extend`` bp from that region also get an edge, with weight
      ``(d / 1000 + 1) ** -0.75`` at distance ``d`` bp (the power-law decay of GLUE).
    - **gene - protein** (RNA x ADT): a protein is linked (weight 1, sign +1) to the gene(s)
      encoding its target: ``CD3`` to CD3D, CD3E and CD3G, ``CD8a_TotalSeqB`` to CD8A,
      ``CD56`` to NCAM1, ``CD45RA`` to PTPRC. Isotype controls get no edge.
    - **user links**: any link matrix or edge list for a modality pair (replaces the built-in
      rule for that pair).
    - a **self-loop** (weight 1, sign +1) on every feature.

    Intervals are half-open (``[start, end)``, BED convention); chromosome names match across
    ``chr1``/``1`` and ``chrM``/``chrMT``.

    Parameters
    ----------
    mdata
        MuData; only its ``var`` tables are read, so paired, unpaired and backed data all work.
    modalities
        Modality name -> kind (``"rna"``, ``"atac"``, ``"adt"`` or ``"counts"``) as in
        :meth:`mosaicvi.MosaicVI.setup_mudata`, a list of names (kinds inferred), or ``None`` for
        all modalities with kinds inferred from common names (``rna``/``gex``,
        ``atac``/``peaks``, ``adt``/``prot``/``protein``). The order is the model's feature order.
    gene_coordinates
        Where gene positions come from for gene-peak links:

        - ``"auto"``: ``var`` columns ``chrom``/``start``/``end`` (optional ``strand``) of the RNA
          modality, else a Cell Ranger ``var["interval"]`` column (``chr1:100345021-100352949``;
          no strand, so the promoter window goes on both sides), else the bundled table (human
          or mouse) that matches the most genes, logged with the match counts; an error if even
          that one places fewer than 10% of the genes.
        - ``"GRCh38"`` (or ``"hg38"``): the bundled human table (Ensembl 93); ``"GRCm38"`` (or
          ``"mm10"``): the bundled mouse table (Ensembl 100). Genes match by Ensembl id when
          ``var_names`` are Ensembl ids or ``var`` has a ``gene_ids`` column (version suffixes
          ignored), otherwise (and for ids not found) by exact, case-sensitive symbol. Other
          assemblies (GRCm39, hg19, ...) need a BED file or DataFrame.
        - a path to a BED file (chrom, start, end, name[, score, strand, ids...]); genes match
          by name, or by Ensembl id against the extra columns.
        - a DataFrame with ``chrom``/``start``/``end`` (optional ``strand``), indexed by gene
          name or with ``gene_name`` / ``gene_id`` columns.
        - ``None``: no gene-peak links.

        Peak positions come from ``var`` columns chrom/start/end of the ATAC modality, else from
        its names (``chr1-100-200``, ``chr1:100-200`` or ``chr1_100_200``).
    promoter
        Promoter window upstream of the TSS, in bp.
    extend
        Also link peaks up to this many bp beyond the promoter-extended gene, with a weight
        decaying with distance; 0 links overlapping peaks only.
    protein_to_gene
        ``"auto"`` maps ADT names to genes with the curated ADT table shipped with mosaicvi
        (e.g. CD3 -> CD3D/CD3E/CD3G, CD16 -> FCGR3A/FCGR3B), then official symbols, then the
        org.Hs.eg.db alias table when an alias names exactly one gene. Names are compared
        case-insensitively after dropping panel suffixes (``_TotalSeqB``, ``-TotalSeqA``,
        ``_prot``, ``_protein``) and, if needed, a duplicate suffix (``.1``/``-1``). Aliases naming
        several measured genes are not guessed: they get no edge and are reported (warning and
        :attr:`GuidanceGraph.notes`). A dict ``{"CD16": "FCGR3A", "CD158": ["KIR2DL1"],
        "CD4-2": None}`` takes precedence for the proteins it names (keys may be raw or
        normalised names; None means no edge). ``None`` skips gene-protein links.
    links
        Extra links, either ``{(modality_a, modality_b): matrix}`` with a scipy sparse or numpy
        matrix of shape (features of a, features of b) whose nonzero entries are signed weights
        (e.g. ``{("rna", "atac"): mdata["rna"].varm["gene_region_link"]}``) or an edge-list
        DataFrame with columns ``source``, ``target`` and optional ``weight`` (default 1) and
        ``sign`` (+1 / -1, default +1); or a single such DataFrame whose names are features of
        any modality. A modality pair given here gets no built-in links. An edge given twice
        keeps its largest weight.
    key
        Store the signed graph (``weights * signs``, in ``mdata.var_names`` order, zero for
        features of other modalities) in ``mdata.varp[key]`` and its metadata (modalities,
        kinds, parameters, :meth:`~GuidanceGraph.summary` and notes) in ``mdata.uns[key]``;
        :meth:`GuidanceGraph.from_mudata` reads it back. ``None`` stores nothing.

    Returns
    -------
    The :class:`GuidanceGraph`; ``graph.summary()`` counts edges per modality pair.

    Raises
    ------
    ValueError
        On unknown modalities, repeated feature names, peaks whose coordinates cannot be read,
        genes without any coordinates, or an RNA/ATAC pair with no gene-peak overlap at all;
        ``mdata`` is then left unchanged.

    Examples
    --------
    Human 10x multiome (gene symbols, peaks named ``chr1:100-200``) with a CITE-seq panel:

    >>> import mudata, mosaicvi
    >>> mdata = mudata.read_h5mu("pbmc_mosaic.h5mu")  # doctest: +SKIP
    >>> graph = mosaicvi.data.guidance_graph(
    ...     mdata, {"rna": "rna", "atac": "atac", "adt": "adt"}, protein_to_gene={"CD32": "FCGR2A"}
    ... )  # doctest: +SKIP
    >>> graph.summary()  # doctest: +SKIP
    >>> mdata.varp["guidance"]  # doctest: +SKIP

    SNARE-seq (mouse gene symbols, mm10 peaks): ``"auto"`` picks the bundled GRCm38 table.

    >>> mdata = mosaicvi.data.snareseq()
    >>> graph = mosaicvi.data.guidance_graph(mdata, key=None)
    >>> int(graph.summary().loc["rna", "edges_atac"])
    25361

    The same data with its own gene-peak link matrix instead:

    >>> graph = mosaicvi.data.guidance_graph(
    ...     mdata, links={("rna", "atac"): mdata["rna"].varm["gene_region_link"]}
    ... )
    >>> int(graph.summary().loc["rna", "edges_atac"])
    25734
    """
    kinds = resolve_kinds(list(mdata.mod), modalities)
    promoter = _check_distance(promoter, "promoter")
    extend = _check_distance(extend, "extend")
    if key is not None and (not isinstance(key, str) or not key):
        raise ValueError(f"`key` must be a non-empty string or None, not {key!r}.")
    if isinstance(protein_to_gene, str) and protein_to_gene != "auto":
        raise ValueError(
            f"`protein_to_gene` must be 'auto', a dict {{protein: gene(s)}} or None, not "
            f"{protein_to_gene!r}."
        )
    names, modality_of = _feature_table(mdata, list(kinds))
    positions = _global_positions(mdata, names) if key is not None else None
    features = {m: mdata.mod[m].var_names for m in kinds}
    offsets = dict(zip(kinds, np.cumsum([0] + [len(features[m]) for m in kinds]), strict=False))
    offsets = {m: int(o) for m, o in offsets.items()}

    parts, covered = [], set()
    if links is not None:
        parts, covered = user_links(links, features, offsets, names, modality_of.to_numpy())
    notes: dict[int, tuple[str, str]] = {}
    user_map = (
        None if protein_to_gene is None or isinstance(protein_to_gene, str) else protein_to_gene
    )
    ambiguous: dict[str, list[str]] = {}
    genes_cache, peaks_cache = {}, {}
    order = list(kinds)
    for i, a in enumerate(order):
        for b in order[i + 1 :]:
            if frozenset((a, b)) in covered:
                continue
            pair_kinds = {kinds[a]: a, kinds[b]: b}
            if len(pair_kinds) < 2:
                continue
            if set(pair_kinds) == {"rna", "atac"} and gene_coordinates is not None:
                rna, atac = pair_kinds["rna"], pair_kinds["atac"]
                if rna not in genes_cache:
                    genes_cache[rna] = gene_regions(
                        mdata.mod[rna], gene_coordinates, f"mdata.mod[{rna!r}]"
                    )
                    unplaced = np.setdiff1d(
                        np.arange(mdata.mod[rna].n_vars), genes_cache[rna].table["feature"]
                    )
                    for f in unplaced:
                        notes[offsets[rna] + int(f)] = (NO_COORDINATES, genes_cache[rna].source)
                if atac not in peaks_cache:
                    peaks_cache[atac] = peak_regions(mdata.mod[atac], f"mdata.mod[{atac!r}]")
                genes, source = genes_cache[rna]
                gene, peak, weight = link_genes_to_peaks(
                    genes, peaks_cache[atac], promoter, extend
                )
                if len(gene) == 0:
                    raise _no_overlap_error(mdata, rna, atac, genes, peaks_cache[atac], source)
                parts.append((gene + offsets[rna], peak + offsets[atac], weight))
            elif set(pair_kinds) == {"rna", "adt"} and protein_to_gene is not None:
                rna, adt = pair_kinds["rna"], pair_kinds["adt"]
                symbols = gene_symbols(mdata.mod[rna]).tolist()
                found = link_proteins_to_genes(list(features[adt]), symbols, user_map)
                parts.append(
                    (
                        found.protein + offsets[adt],
                        found.gene + offsets[rna],
                        np.ones(len(found.gene)),
                    )
                )
                for position, note in found.notes.items():
                    notes.setdefault(offsets[adt] + position, note)
                ambiguous.update(found.ambiguous)

    weights, signs = _combine(parts, len(names))
    note_index = sorted(notes)
    notes_frame = pd.DataFrame(
        {
            "modality": modality_of.to_numpy()[note_index].astype(str),
            "category": [notes[i][0] for i in note_index],
            "detail": [notes[i][1] for i in note_index],
        },
        index=names[note_index],
    )
    graph = GuidanceGraph(
        weights,
        signs,
        names,
        modality_of,
        dict(kinds),
        notes_frame,
        {"promoter": promoter, "extend": extend},
    )
    if ambiguous:
        listed = "; ".join(f"{p} ({', '.join(g)})" for p, g in list(ambiguous.items())[:10])
        warnings.warn(
            f"{len(ambiguous)} protein names are aliases of several genes and got no gene link: "
            f"{listed}. Resolve them with `protein_to_gene={{name: gene}}`.",
            UserWarning,
            stacklevel=2,
        )
    if user_map:
        _warn_unused_protein_names(user_map, [features[m] for m in kinds if kinds[m] == "adt"])
    if key is not None:
        _store(mdata, graph, key, positions)
    return graph


def _warn_unused_protein_names(
    protein_to_gene: Mapping[str, Any], panels: Sequence[pd.Index]
) -> None:
    known = set()
    for panel in panels:
        for name in panel:
            key = protein_key(name)
            known |= {str(name), key, key.rsplit("-", 1)[0] if key[-1:].isdigit() else key}
    unused = [n for n in protein_to_gene if str(n) not in known and protein_key(n) not in known]
    if unused:
        warnings.warn(
            f"`protein_to_gene` names proteins that no ADT modality has: {unused[:10]}.",
            UserWarning,
            stacklevel=3,
        )


def _store(mdata: MuData, graph: GuidanceGraph, key: str, positions: np.ndarray) -> None:
    """Write the signed graph to ``mdata.varp[key]`` and its metadata to ``mdata.uns[key]``."""
    signed = graph.signed().tocoo()
    stored = sp.csr_matrix(
        (signed.data, (positions[signed.row], positions[signed.col])),
        shape=(mdata.n_vars, mdata.n_vars),
        dtype=np.float32,
    )
    stored.sort_indices()
    meta = {
        "modalities": list(graph.kinds),
        "kinds": list(graph.kinds.values()),
        "promoter": graph.params["promoter"],
        "extend": graph.params["extend"],
        "decay": f"(d / {DECAY_SCALE:g} + 1) ** -{DECAY_POWER:g}",
        "summary": graph.summary(),
        "notes": graph.notes,
    }
    mdata.varp[key] = stored
    mdata.uns[key] = meta
