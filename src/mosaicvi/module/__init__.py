"""The torch module of :class:`~mosaicvi.MosaicVI`."""

from mosaicvi.module._mosaic_vae import MosaicVAE

__all__ = ["MosaicVAE"]
