"""Differentiable rendering and UV-space operations over pytorch3d — and THE page of coordinate conventions.

Coordinate frames (stated once here; every docstring in albedogan refers to these names)
----------------------------------------------------------------------------------------
* **World / FLAME frame**: metres, right-handed, +X toward the subject's left (image right in a frontal view),
  +Y up, +Z out of the face toward the camera. FLAME vertices, landmarks and DECA-style SH lighting normals live here.
* **View frame**: right-handed camera-aligned frame, +X right, +Y up, +Z toward the camera (for a frontal weak-
  perspective camera it is the world frame scaled and shifted). Back-facing test: a normal faces the camera iff its
  view-frame z > 0. ``uv.ndc_to_view`` converts image NDC to it by negating y and depth (a rotation, det +1).
* **Image NDC** (what every camera returns, what the rasteriser consumes): ``(x, y, depth)`` with x right and y
  *down*, both in [-1, 1] spanning the whole image whatever its aspect ratio ((-1, -1) = top-left corner of the
  top-left pixel, (1, 1) = bottom-right corner). Pixel centres sit at the ``align_corners=False`` positions
  ``x_j = (2 j + 1) / W - 1``, ``y_i = (2 i + 1) / H - 1``, so image NDC is exactly the ``grid`` convention of
  ``torch.nn.functional.grid_sample(..., align_corners=False)``. Depth grows away from the camera (NDC units for
  weak perspective: ``-s z``; metres for :class:`PerspectiveCamera`); only its order matters for visibility.
* **pytorch3d NDC** (internal to ``rasterizer.py`` only): +X left, +Y up, the shorter image side spans [-1, 1].
  Conversion: ``X = -x W / min(H, W)``, ``Y = -y H / min(H, W)``; depth is shifted/remapped to positive values
  on a detached copy (the caller's tensors are never modified).
* **Pixel coordinates**: ``(u, v) = ((x + 1) W / 2 - 0.5, (y + 1) H / 2 - 0.5)``: pixel (column j, row i) has its
  centre at integer ``(j, i)`` (``cameras.ndc_to_pixels`` / ``pixels_to_ndc``).
* **UV**: u right, v up, both in [0, 1]. Texture tensors are (N, C, Hu, Wu) with row 0 at v = 1 (the top) and
  column 0 at u = 0. UV -> grid_sample grid: ``(2u - 1, 1 - 2v)`` with ``align_corners=False`` (``uv.uv_to_grid``);
  texel centres are the ``align_corners=False`` positions. FLAME's UV layout is *not* left/right symmetric (the
  partner of a face texel sits at u' = 1 - u - 0.0068; the eye islands are not mirror images), nor is the synthetic
  head's: mirroring a UV map is a lookup through the head's partner-UV map (:class:`UVMirror`), never a width flip.

Cameras: weak perspective ``[s, tx, ty]`` (DECA: ``x' = s (x + tx)``, ``y' = -s (y + ty)``, ``depth = -s z``)
and pinhole ``X_cam = R X + T`` in OpenCV axes (x right, y down, z forward), focal length in NDC units.
Lighting: 9x3 second-order SH, Lambertian, ``image = albedo x shading`` (``sh_lighting``).

Public API: :class:`FaceRenderer` (``renderer.py``), :class:`Rasterizer` / :func:`rasterize` / :class:`Fragments`
(``rasterizer.py``), cameras (``cameras.py``), SH lighting (``sh_lighting.py``), normals (``normals.py``),
:class:`UVSpace` with ``unwrap`` / ``attribute_map``, :class:`UVMirror`, :func:`mirror_complete`, :func:`resize_uv`, :func:`sample_texture` (``uv.py``)
and test/demo meshes (``primitives.py``).
"""

from albedogan.render.cameras import (
    Camera,
    PerspectiveCamera,
    WeakPerspectiveCamera,
    ndc_to_pixels,
    pixels_to_ndc,
    weak_perspective_project,
)
from albedogan.render.normals import face_normals, vertex_normals
from albedogan.render.primitives import UVMesh, uv_grid, uv_sphere
from albedogan.render.rasterizer import (
    Fragments,
    Rasterizer,
    interpolate_vertex_attributes,
    pixel_centers_ndc,
    rasterize,
)
from albedogan.render.renderer import FaceRenderer
from albedogan.render.sh_lighting import SH_CONSTANTS, SHLighting, directional_sh_coeffs, sh_basis, sh_shading
from albedogan.render.uv import UVMirror, UVSpace, mirror_complete, ndc_to_view, resize_uv, sample_texture, uv_to_grid

__all__ = [
    "Camera",
    "FaceRenderer",
    "Fragments",
    "PerspectiveCamera",
    "Rasterizer",
    "SHLighting",
    "SH_CONSTANTS",
    "UVMesh",
    "UVMirror",
    "UVSpace",
    "WeakPerspectiveCamera",
    "directional_sh_coeffs",
    "face_normals",
    "interpolate_vertex_attributes",
    "mirror_complete",
    "ndc_to_pixels",
    "ndc_to_view",
    "pixel_centers_ndc",
    "pixels_to_ndc",
    "rasterize",
    "resize_uv",
    "sample_texture",
    "sh_basis",
    "sh_shading",
    "uv_grid",
    "uv_sphere",
    "uv_to_grid",
    "vertex_normals",
    "weak_perspective_project",
]
