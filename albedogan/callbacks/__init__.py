"""albedogan.callbacks: Lightning callbacks that own the training-time I/O (image grids, meshes to W&B)."""

from albedogan.callbacks.export import ExportInferenceWeights
from albedogan.callbacks.image_grid import ImageGridCallback, make_grid

__all__ = ["ExportInferenceWeights", "ImageGridCallback", "make_grid"]
