"""Getting data in: example data sets and mosaic helpers."""

from mosaicvi.data._datasets import snareseq
from mosaicvi.data._mosaic_split import mosaic_split

__all__ = ["mosaic_split", "snareseq"]
