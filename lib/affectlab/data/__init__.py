"""Datasets: containers, taxonomy, manifests, loaders and the embedded default."""

from affectlab.data.sets import EEGSet, FaceSet

__all__ = ["EEGSet", "FaceSet"]
