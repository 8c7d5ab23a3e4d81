"""Finding and reading external files: allow-listed unpickling (``safe_pickle``), clear missing-file errors
(``locate``), the official FLAME files (one reader module per format: ``flame_model``, ``landmark_embedding``,
``uv_template``, ``uv_mask``; ``flame_assets`` loads a head's files together), StyleGAN2 checkpoints
(``stylegan2``), format converters (``convert/``) and the embedded synthetic head with the same-format writers
(``synthetic/``)."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "AssetFormatError": "locate", "MissingAssetError": "locate", "AssetSpec": "locate",
    "UnsafePickleError": "safe_pickle",
    "load_flame_model": "flame_model", "load_landmark_embedding": "landmark_embedding",
    "load_uv_template": "uv_template", "load_uv_mask": "uv_mask", "load_flame_assets": "flame_assets",
    "FlameAssetPaths": "flame_assets",
    "load_stylegan2": "stylegan2", "load_stylegan2_discriminator": "stylegan2",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
