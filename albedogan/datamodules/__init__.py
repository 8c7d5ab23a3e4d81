"""Data: robust image loading (``images``), the seeded teacher-latent stream (``latent_stream``), sharded caches
(``shards``) of teacher samples (``teacher_cache``) and real face crops (``real_faces``), evaluation sets
(``eval_sets``), image folders (``image_folder``), face detection (``detection``) and alignment (``alignment``)."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "load_image": "images", "iter_image_paths": "images", "ImageLoadError": "images", "to_tensor": "images",
    "LatentDataModule": "latent_stream", "TeacherLatentStream": "latent_stream",
    "TeacherCacheDataModule": "teacher_cache", "write_teacher_cache": "teacher_cache",
    "RealFaceMix": "real_faces", "write_face_cache": "real_faces", "ShardedCache": "shards",
    "NowEvalSet": "eval_sets", "PhotoScanSet": "eval_sets",
    "ImageFolderDataModule": "image_folder", "ImageFolderDataset": "image_folder",
    "build_face_detector": "detection", "FaceDetection": "detection",
    "align_faces": "alignment", "encoder_crop": "alignment", "ARCFACE_TEMPLATE_112": "alignment",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
