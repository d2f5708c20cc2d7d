"""Getting data in: example data sets, mosaic helpers and the feature guidance graph."""

from mosaicvi.data._build_guidance_graph import guidance_graph
from mosaicvi.data._datasets import neurips2021_bmmc_starter, snareseq
from mosaicvi.data._guidance_graph import GuidanceGraph
from mosaicvi.data._mosaic_split import mosaic_split
from mosaicvi.data._synthetic_mosaic import synthetic_mosaic

__all__ = [
    "GuidanceGraph",
    "guidance_graph",
    "mosaic_split",
    "neurips2021_bmmc_starter",
    "snareseq",
    "synthetic_mosaic",
]
