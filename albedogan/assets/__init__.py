"""Finding and reading external files: allow-listed unpickling (``safe_pickle``), clear missing-file errors
(``locate``), the official FLAME files (``flame_files``), StyleGAN2 checkpoints (``stylegan2``), format converters
(``convert/``) and the embedded synthetic head (``synthetic/``)."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "AssetFormatError": "locate", "MissingAssetError": "locate", "AssetSpec": "locate",
    "UnsafePickleError": "safe_pickle",
    "load_flame_model": "flame_files", "load_landmark_embedding": "flame_files", "load_uv_template": "flame_files",
    "load_uv_mask": "flame_files", "load_flame_assets": "flame_files", "FlameAssetPaths": "flame_files",
    "load_stylegan2": "stylegan2", "load_stylegan2_discriminator": "stylegan2",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
