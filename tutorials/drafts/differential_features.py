# Draft (not yet executed): differential features tutorial, percent format (jupytext-style).
# Build into tutorials/differential_features.ipynb and execute it when a CPU is free; the first run
# timed out (>30 min per cell) on 2 cores shared with ~12 other processes.
# %% [markdown]
# # Differential features across modalities, and imputed accessibility
#
# Which genes and which peaks mark each cell type, even when a sample measured only one of the
# two? MosaicVI decodes **every** modality for **every** cell from its latent code, so
# differential tests per cell type use RNA-only, ATAC-only and paired cells alike, and cells
# that lack a modality get an imputed profile of it.
#
# Data: the SNARE-seq mosaic of the [first tutorial](snareseq_mosaic.ipynb) (4 paired, 4
# RNA-only, 4 ATAC-only samples of mouse cortex), grouped by the 15 coarse published cell
# types. To keep this notebook at a few minutes on a CPU we keep 4,000 of the 10,309 cells (at
# random) and the 5,000 most often open peaks (of 25,734), and train for **20 epochs**; more
# epochs give better results.

# %%
import logging
import warnings

# Quieter output: deprecation notices of dependencies and Lightning's hints.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message=".*(num_workers|log_every_n_steps|IProgress|fewer than 3 cells).*")
import anndata as ad
import numpy as np
import scanpy as sc
import scvi

import mosaicvi

for name in ("lightning.pytorch", "lightning.fabric"):  # after importing them
    logging.getLogger(name).setLevel(logging.ERROR)
scvi.settings.seed = 0
scvi.settings.verbosity = logging.WARNING
sc.settings.set_figure_params(dpi=70, frameon=False, figsize=(4, 4))

# %% tags=["parameters"]
# Training epochs: 20 keeps this notebook at a few minutes on a CPU; more epochs give
# better results (model.train() without max_epochs picks a size-dependent default).
MAX_EPOCHS = 20

# %%
paired = mosaicvi.data.snareseq()
rng = np.random.default_rng(0)
cells = np.sort(rng.choice(paired.n_obs, size=4000, replace=False))
paired = paired[cells].copy()
open_cells = np.asarray((paired["atac"].X > 0).sum(axis=0)).ravel()
most_open = np.sort(np.argsort(-open_cells, kind="stable")[:5000])
paired.mod["atac"] = paired["atac"][:, most_open].copy()
paired.update()
batches = sorted(paired.obs["batch"].unique())
mdata = mosaicvi.data.mosaic_split(
    paired, {"rna": batches[:8], "atac": batches[:4] + batches[8:]}
)
mosaicvi.MosaicVI.setup_mudata(mdata, batch_key="batch", labels_key="cell_type_coarse")
mdata

# %%
model = mosaicvi.MosaicVI(mdata)
model.train(max_epochs=MAX_EPOCHS, enable_progress_bar=False)
mdata.obsm["X_mosaicvi"] = model.get_latent_representation()
sc.pp.neighbors(mdata, use_rep="X_mosaicvi")
sc.tl.umap(mdata)
sc.pl.umap(mdata, color="cell_type_coarse")

# %% [markdown]
# ## Bayes factors per cell type and modality
#
# `differential_features(groupby, modality)` tests each group against all other cells with
# scvi-tools' Bayes-factor machinery: `proba_de` is the posterior probability that the effect
# exceeds `delta`, `bayes_factor` its log odds, and `is_de_fdr_0.05` controls the posterior
# expected false discovery rate. For RNA the effect is a log2 fold change; for ATAC it is the
# difference of accessibility probabilities. Raw statistics (`raw_mean1`, `n_measured1`, ...)
# use only the cells that measured the modality.

# %%
de_rna = model.differential_features("cell_type_coarse", "rna", n_samples=2000)
top_rna = de_rna[de_rna["is_de_fdr_0.05"] & (de_rna["lfc_mean"] > 0)]
top_rna.groupby("group1", observed=True).head(2)[
    ["group1", "proba_de", "bayes_factor", "lfc_mean", "raw_mean1", "raw_mean2", "n_measured1"]
].head(12)

# %%
de_atac = model.differential_features("cell_type_coarse", "atac", n_samples=2000)
de_atac.sort_values("bayes_factor", ascending=False)[
    ["group1", "proba_de", "bayes_factor", "lfc_mean", "raw_mean1", "raw_mean2"]
].head(8)

# %% [markdown]
# The results are also stored in each modality's `uns["rank_features_mosaicvi"]`, in the
# layout of `sc.tl.rank_genes_groups`, so scanpy's plots work on them. Dot plot of the top
# genes per cell type, on the measured RNA of the RNA cells:

# %%
sc.pl.rank_genes_groups_dotplot(
    mdata["rna"], key="rank_features_mosaicvi", n_genes=2, standard_scale="var"
)

# %% [markdown]
# Both modalities side by side: each cell type's top genes and peaks, as decoded values
# standardised across cell types (`mosaicvi.pl.differential_heatmap`).

# %%
mosaicvi.pl.differential_heatmap({"rna": de_rna, "atac": de_atac}, n_features=2)

# %% [markdown]
# ## Imputed accessibility for the RNA-only cells
#
# The RNA-only samples (09E-09H) never measured chromatin. Their accessibility is decoded from
# their latent codes into the samples that did measure ATAC. If the integration is right, the
# imputed accessibility of each cell type's top peaks (found above) is highest in that cell
# type, although these cells' cell types and peaks were never seen together.

# %%
presence = mdata.obsm["_mosaicvi_presence"]
rna_only = (presence["rna"] & ~presence["atac"]).to_numpy()
groups = ["L2/3", "Astro", "Oligo", "Pvalb"]
top_peaks = {}  # the 3 peaks with the strongest evidence of being more open, per cell type
for group in groups:
    higher = de_atac[(de_atac["group1"] == group) & (de_atac["lfc_mean"] > 0)]
    ranked = higher.sort_values("bayes_factor", ascending=False).index
    chosen = [p for ps in top_peaks.values() for p in ps]
    top_peaks[group] = [p for p in ranked if p not in chosen][:3]
peaks = [p for ps in top_peaks.values() for p in ps]
imputed = model.get_normalized_expression(modality="atac", feature_list=peaks)
accessibility = ad.AnnData(imputed, obs=mdata.obs[["batch", "cell_type_coarse"]])
accessibility.obsm["X_umap"] = mdata.obsm["X_umap"]
sc.pl.dotplot(
    accessibility[rna_only],
    top_peaks,
    groupby="cell_type_coarse",
    standard_scale="var",
    title="imputed accessibility, RNA-only cells",
)

# %%
sc.pl.umap(
    accessibility[rna_only],
    color=[ps[0] for ps in top_peaks.values()],
    ncols=4,
    cmap="viridis",
    vmax="p99",
)
