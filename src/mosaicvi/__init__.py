"""mosaicvi: mosaic single-cell multi-omics integration with scvi-tools."""

from importlib.metadata import PackageNotFoundError, version

from mosaicvi import data, metrics, pl
from mosaicvi.model import MosaicVI

try:
    __version__ = version("mosaicvi")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["MosaicVI", "__version__", "data", "metrics", "pl"]
