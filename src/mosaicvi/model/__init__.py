"""The user-facing model."""

from mosaicvi.model._mosaicvi import MosaicVI

__all__ = ["MosaicVI"]
