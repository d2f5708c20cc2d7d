"""Getting data in: example data sets, mosaic helpers and the feature guidance graph."""

from mosaicvi.data._build_guidance_graph import guidance_graph
from mosaicvi.data._datasets import neurips2021_bmmc_starter, snareseq
from mosaicvi.data._feature_masks import concat_panels
from mosaicvi.data._guidance_graph import GuidanceGraph
from mosaicvi.data._mosaic_split import mosaic_split
from mosaicvi.data._shared_features import FeatureLinks, shared_feature_links
from mosaicvi.data._synthetic_mosaic import synthetic_mosaic

__all__ = [
    "FeatureLinks",
    "concat_panels",
    "GuidanceGraph",
    "guidance_graph",
    "mosaic_split",
    "neurips2021_bmmc_starter",
    "shared_feature_links",
    "snareseq",
    "synthetic_mosaic",
]
