"""Plots of MosaicVI results."""

from mosaicvi.pl._differential import differential_heatmap

__all__ = ["differential_heatmap"]
