"""scib-metrics scores (a benchmark extra); FOSCTTM and kNN transfer are in ``mosaicvi.metrics``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from anndata import AnnData


def scib_scores(
    obs: pd.DataFrame,
    embeddings: dict[str, np.ndarray],
    batch_key: str,
    label_key: str,
    pre_integrated: str | None = None,
    n_jobs: int = 2,
    score_pre_integrated: bool = True,
) -> pd.DataFrame:
    """scib-metrics Benchmarker scores (not min-max scaled), one row per embedding.

    ``pre_integrated`` names the embedding the batch metrics that need an unintegrated reference
    (PCR comparison) compare against; default: the first embedding. With
    ``score_pre_integrated=False`` that reference is used but not scored itself (its scores do
    not depend on the others, so a caller can score it once and cache them).
    """
    from scib_metrics.benchmark import Benchmarker

    scored = AnnData(obs=obs[[batch_key, label_key]].astype(str).astype("category"))
    for name, z in embeddings.items():
        scored.obsm[name] = np.asarray(z, dtype=np.float32)
    reference = pre_integrated or next(iter(embeddings))
    bench = Benchmarker(
        scored,
        batch_key=batch_key,
        label_key=label_key,
        embedding_obsm_keys=[
            name for name in embeddings if score_pre_integrated or name != reference
        ],
        pre_integrated_embedding_obsm_key=reference,
        n_jobs=n_jobs,
    )
    bench.benchmark()
    scores = bench.get_results(min_max_scale=False)
    return scores.drop(index="Metric Type", errors="ignore").astype(float)
