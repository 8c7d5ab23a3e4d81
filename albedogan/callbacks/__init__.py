"""Lightning callbacks that own the training-time I/O (image grids, meshes to W&B, the inference-weights export).
Names are re-exported lazily (:func:`albedogan.utils.lazy.lazy_exports`)."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "ExportInferenceWeights": "export",
    "ImageGridCallback": "image_grid", "make_grid": "image_grid",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
