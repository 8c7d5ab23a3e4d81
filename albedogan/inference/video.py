"""``python infer.py mode=video``: turntables, latent interpolations and expression sweeps as MP4 and GIF.

Kinds (``mode.kinds``):

* ``turntable``: each face (generated from ``seeds``, or loaded from output folders of generate/reconstruct via
  ``faces=[<folder>, ...]``) is rotated along an azimuth/elevation path — azimuth ``azimuth_max·sin(2πt)``, elevation
  ``elevation_max·sin(4πt)`` for ``path=sweep`` or a full 360° azimuth for ``path=turntable`` — and rendered with a
  fixed light in the camera frame, the whole path framed by one camera (no zoom pumping).
* ``interpolation``: between consecutive seeds, ``frames`` steps each (slerp in z, or lerp in w), rendered end to end
  (teacher image | render | UV albedo per frame), so albedo and shape morph together.
* ``expression``: the first face with expression components ``expression_components`` swept in
  ``[-expression_max, expression_max]`` and the jaw opened to ``jaw_max``.

Frames are (T, H, W, 3) uint8 RGB; files are written atomically (encoded to a temporary file or buffer, then moved).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from albedogan.inference.editing import lerp, slerp
from albedogan.inference.export import texture_to_uint8
from albedogan.inference.pipeline import FacePipeline
from albedogan.render import FaceRenderer, WeakPerspectiveCamera, directional_sh_coeffs
from albedogan.structures import FlameParams
from albedogan.utils.io import atomic_write_bytes
from albedogan.utils.logging import get_logger
from albedogan.utils.progress import progress_bar

__all__ = ["load_face", "orbit_angles", "render_orbit", "rotation_matrices", "run_video", "write_video"]

log = get_logger(__name__)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float = 24.0) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames as ``.mp4`` (H.264 via imageio-ffmpeg, yuv420p) or ``.gif`` (looping).

    H and W must be even for MP4. The file appears atomically (encoded elsewhere, then moved into place). GIF
    encoding (Pillow) merges consecutive identical frames into one longer frame: playback time is kept.
    """
    import imageio.v2 as iio2
    import imageio.v3 as iio

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or frames.shape[0] < 1:
        raise ValueError(f"write_video: frames must be (T>=1, H, W, 3) uint8, got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"write_video: fps must be > 0, got {fps}")
    suffix = path.suffix.lower()
    if suffix == ".gif":
        data = iio.imwrite("<bytes>", frames, extension=".gif", duration=1000.0 / fps, loop=0)
    elif suffix == ".mp4":
        if frames.shape[1] % 2 or frames.shape[2] % 2:
            raise ValueError(f"write_video: MP4 needs even H and W, got {frames.shape[1]}x{frames.shape[2]}")
        with tempfile.TemporaryDirectory(dir=path.parent if path.parent.exists() else None) as tmp:
            tmp_path = Path(tmp) / "video.mp4"
            writer = iio2.get_writer(tmp_path, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2,
                                     pixelformat="yuv420p", ffmpeg_log_level="error",
                                     output_params=["-bitexact", "-threads", "1"])
            try:
                for frame in frames:
                    writer.append_data(frame)
            finally:
                writer.close()
            data = tmp_path.read_bytes()
    else:
        raise ValueError(f"write_video: unsupported suffix {path.suffix!r} (.mp4 or .gif)")
    atomic_write_bytes(path, data)
    return path


def orbit_angles(frames: int, path: str = "sweep", azimuth_max: float = 60.0, elevation_max: float = 10.0
                 ) -> torch.Tensor:
    """(T, 2) float64 ``(azimuth, elevation)`` in radians along the path (degrees in the arguments).

    ``sweep``: azimuth ``azimuth_max·sin(2πt)``, elevation ``elevation_max·sin(4πt)``, t = k/T (a seamless loop);
    ``turntable``: azimuth 2πt (full turn), elevation ``elevation_max`` constant.
    """
    if frames < 1:
        raise ValueError(f"orbit_angles: frames must be >= 1, got {frames}")
    t = torch.arange(frames, dtype=torch.float64) / frames
    if path == "sweep":
        az = math.radians(azimuth_max) * torch.sin(2 * math.pi * t)
        el = math.radians(elevation_max) * torch.sin(4 * math.pi * t)
    elif path == "turntable":
        az = 2 * math.pi * t
        el = torch.full_like(t, math.radians(elevation_max))
    else:
        raise ValueError(f"orbit_angles: path must be 'sweep' or 'turntable', got {path!r}")
    return torch.stack([az, el], -1)


def rotation_matrices(angles: torch.Tensor) -> torch.Tensor:
    """(T, 2) ``(azimuth about +Y, elevation about +X)`` radians → (T, 3, 3) ``R = R_x(el) · R_y(az)`` (column
    vectors; positive azimuth turns the face toward +X, positive elevation tilts it toward +Y... i.e. up)."""
    az, el = angles[:, 0], angles[:, 1]
    c, s = torch.cos(az), torch.sin(az)
    o, z = torch.ones_like(az), torch.zeros_like(az)
    ry = torch.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(-1, 3, 3)
    ce, se = torch.cos(el), torch.sin(el)
    rx = torch.stack([o, z, z, z, ce, -se, z, se, ce], -1).reshape(-1, 3, 3)
    return rx @ ry


def _light(direction: Sequence[float], intensity: float, ambient: float, ref: torch.Tensor) -> torch.Tensor:
    return directional_sh_coeffs(torch.tensor(list(direction), dtype=ref.dtype, device=ref.device),
                                 intensity=intensity, ambient=ambient)  # (1, 9, 3)


@torch.no_grad()
def render_orbit(renderer: FaceRenderer, vertices: torch.Tensor, albedo: torch.Tensor, angles: torch.Tensor,
                 light: torch.Tensor, margin: float = 0.08, batch_size: int = 8,
                 interior: Optional[torch.Tensor] = None) -> np.ndarray:
    """Render one mesh along an orbit.

    Args:
        renderer: a renderer at the video resolution.
        vertices: (V, 3) float FLAME vertices (metres).
        albedo: (1, 3, R, R) float [0, 1] UV albedo.
        angles: (T, 2) radians (:func:`orbit_angles`).
        light: (1, 9, 3) SH light in the camera frame (the light stays put while the head turns).
        margin: framing margin (fraction of the NDC half-extent).
        batch_size: frames per render call.
        interior: optional (1, 3) colour of the inside of the head seen through the parted lips
            (:class:`FaceRenderer`).

    Returns:
        (T, H, W, 3) uint8 frames over a white background.
    """
    centre = 0.5 * (vertices.amin(0) + vertices.amax(0))
    local = vertices - centre  # (V, 3)
    radius = local.norm(dim=-1).max().clamp_min(1e-6)  # bounds every rotation: one framing for the whole path
    cam = torch.stack([(1 - margin) / radius, radius.new_zeros(()), radius.new_zeros(())])
    rots = rotation_matrices(angles).to(vertices)
    out = []
    for start in range(0, rots.shape[0], batch_size):
        r = rots[start:start + batch_size]  # (B, 3, 3)
        verts = torch.einsum("bij,vj->bvi", r, local)  # (B, V, 3)
        b = verts.shape[0]
        rendered = renderer.render_world(verts, WeakPerspectiveCamera(cam.expand(b, 3)), albedo.expand(b, -1, -1, -1),
                                         light.expand(b, -1, -1), interior=interior)
        img = rendered.image + (1 - rendered.alpha)
        out.append(img.clamp(0, 1))
    return np.stack([texture_to_uint8(f) for f in torch.cat(out)])


def load_face(folder: str | os.PathLike, n_shape: int, n_exp: int
              ) -> tuple[FlameParams, torch.Tensor, Optional[torch.Tensor]]:
    """Read a face written by generate/reconstruct: ``params.npz`` → FlameParams (1, ...), ``mesh_albedo.png`` →
    (1, 3, R, R) float [0, 1] albedo, and the (1, 3) colour of the mouth's inside (``mouth_interior``, written by
    reconstruct from the photo; None when absent). Coefficients are zero-padded/truncated to ``n_shape``/``n_exp``."""
    from albedogan.assets.locate import MissingAssetError

    folder = Path(folder)
    npz, png = folder / "params.npz", folder / "mesh_albedo.png"
    for f in (npz, png):
        if not f.is_file():
            raise MissingAssetError(f"video: {f} not found — faces=[...] takes output folders of mode=generate or "
                                    "mode=reconstruct (each holds params.npz and mesh_albedo.png)")
    p = np.load(npz, allow_pickle=False)

    def vec(key: str, size: int) -> torch.Tensor:
        v = torch.zeros(size)
        src = torch.from_numpy(np.asarray(p[key], np.float32)).reshape(-1)[:size]
        v[: src.numel()] = src
        return v[None]

    params = FlameParams(vec("shape", n_shape), vec("expression", n_exp), vec("global_pose", 3),
                         vec("neck_pose", 3), vec("jaw_pose", 3), vec("eye_pose", 6))
    albedo = torch.from_numpy(np.asarray(Image.open(png).convert("RGB"), np.float32) / 255.0).permute(2, 0, 1)[None]
    interior = None
    if "mouth_interior" in p.files:
        interior = torch.from_numpy(np.asarray(p["mouth_interior"], np.float32).reshape(1, 3)).clamp(0, 1)
    return params, albedo, interior


def _frontal(params: FlameParams) -> FlameParams:
    zero = torch.zeros_like(params.global_pose)
    return FlameParams(params.shape, params.expression, zero, torch.zeros_like(params.neck_pose),
                       params.jaw_pose, params.eye_pose)


def _tile(images: Sequence[torch.Tensor], size: int) -> np.ndarray:
    """Side by side (T, 3, h, w) tensors resized to size×size → (T, size, k·size, 3) uint8."""
    tiles = [F.interpolate(im.float().cpu(), size=(size, size), mode="bilinear", align_corners=False,
                           antialias=True).clamp(0, 1) for im in images]
    row = torch.cat(tiles, dim=-1)  # (T, 3, size, k·size)
    return np.stack([texture_to_uint8(f) for f in row])


@torch.no_grad()
def run_video(
    pipeline: FacePipeline,
    out: str | os.PathLike,
    kinds: Sequence[str] = ("turntable",),
    seeds: Sequence[int] = (0, 1),
    faces: Optional[Sequence[str]] = None,
    truncation_psi: Optional[float] = None,
    frames: int = 48,
    fps: float = 24.0,
    resolution: int = 256,
    path: str = "sweep",
    azimuth_max: float = 60.0,
    elevation_max: float = 10.0,
    light_direction: Sequence[float] = (-0.4, 0.5, 1.0),
    light_intensity: float = 0.7,
    light_ambient: float = 0.45,
    interpolation_space: str = "z",
    expression_components: Sequence[int] = (0, 1),
    expression_max: float = 2.0,
    jaw_max: float = 0.3,
    formats: Sequence[str] = ("mp4", "gif"),
    batch_size: int = 8,
    seed: int = 0,
    device: torch.device | str | None = None,
) -> Path:
    """Write the requested videos into ``out`` (see module docstring); returns ``out``.

    Args:
        pipeline: the built pipeline.
        out: output folder.
        kinds: any of ``turntable``, ``interpolation``, ``expression``.
        seeds: faces to generate (turntable / expression use each / the first; interpolation goes through them).
        faces: output folders of generate/reconstruct to turn instead of seeds (turntable and expression).
        truncation_psi: truncation of generated faces (None = teacher default).
        frames: frames per turntable / expression sweep / interpolation segment.
        fps: frames per second.
        resolution: frame side in pixels (even, for MP4).
        path: ``sweep`` or ``turntable`` (:func:`orbit_angles`); azimuth_max, elevation_max: degrees.
        light_direction, light_intensity, light_ambient: the light (camera frame) of turntables and sweeps.
        interpolation_space: ``z`` (slerp) or ``w`` (lerp).
        expression_components: expression coefficients swept; expression_max: their amplitude (basis units);
            jaw_max: jaw opening at the sweep's peak (radians).
        formats: ``mp4`` and/or ``gif``.
        batch_size: frames per forward pass.
        seed: the run seed (faces come from ``seeds``).
        device: moves the pipeline (None = leave it).
    """
    if device is not None:
        pipeline = pipeline.to(device)
    unknown = set(kinds) - {"turntable", "interpolation", "expression"}
    if unknown:
        raise ValueError(f"video: unknown kinds {sorted(unknown)} (turntable | interpolation | expression)")
    bad_fmt = set(formats) - {"mp4", "gif"}
    if bad_fmt or not formats:
        raise ValueError(f"video: formats must be a non-empty subset of [mp4, gif], got {list(formats)}")
    if "interpolation" in kinds and len(seeds) < 2:  # before anything is rendered
        raise ValueError("video: interpolation needs at least two seeds (mode.seeds=[a,b,...])")
    if interpolation_space not in ("z", "w"):
        raise ValueError(f"video: interpolation_space must be 'z' or 'w', got {interpolation_space!r}")
    if int(resolution) < 2 or int(resolution) % 2:
        raise ValueError(f"video: resolution must be an even number of pixels, got {resolution}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    head = pipeline.head
    dev = pipeline.device
    renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, int(resolution)).to(dev)
    light = _light(light_direction, light_intensity, light_ambient, head.verts_uvs)
    written: list[Path] = []

    def save(stem: str, video: np.ndarray) -> None:
        for fmt in formats:
            written.append(write_video(out / f"{stem}.{fmt}", video, fps))

    # the faces: (name, params (1, ...), albedo (1, 3, R, R), mouth interior colour (1, 3) or None); faces without
    # a colour of their own (generated ones, older folders) take the pipeline's
    sources: list[tuple[str, FlameParams, torch.Tensor, Optional[torch.Tensor]]] = []
    if faces:
        for folder in faces:
            params, albedo, interior = load_face(folder, head.n_shape, head.n_exp)
            sources.append((Path(folder).name, params.to(dev), albedo.to(dev),
                            pipeline.mouth_interior if interior is None else interior.to(dev)))
    elif {"turntable", "expression"} & set(kinds):
        result = pipeline.generate(list(seeds), truncation_psi)
        for i, s in enumerate(seeds):
            sources.append((f"seed{int(s):04d}", result.estimate.params[i:i + 1], result.albedo[i:i + 1],
                            pipeline.mouth_interior))
    n_videos = len(sources) * ("turntable" in kinds) + int("expression" in kinds and bool(sources)) + \
        int("interpolation" in kinds)
    with progress_bar("video", n_videos) as advance:
        if "turntable" in kinds:
            angles = orbit_angles(int(frames), path, azimuth_max, elevation_max)
            for name, params, albedo, interior in sources:
                verts = head(_frontal(params)).vertices[0]
                frames_ = render_orbit(renderer, verts, albedo, angles, light, batch_size=batch_size,
                                       interior=interior)
                save(f"turntable_{name}", frames_)
                advance(f"turntable_{name}")

        if "expression" in kinds and sources:
            name, params, albedo, interior = sources[0]
            t = torch.sin(2 * math.pi * torch.arange(int(frames), dtype=torch.float32, device=dev) / int(frames))
            n = t.shape[0]
            expr = params.expression.expand(n, -1).clone()
            comps = [int(c) for c in expression_components if 0 <= int(c) < head.n_exp]
            expr[:, comps] = expr[:, comps] + expression_max * t[:, None]
            jaw = params.jaw_pose.expand(n, -1).clone()
            jaw[:, 0] = jaw[:, 0] + jaw_max * t.clamp_min(0)
            swept = FlameParams(params.shape.expand(n, -1), expr, torch.zeros(n, 3, device=dev),
                                torch.zeros(n, 3, device=dev), jaw, params.eye_pose.expand(n, -1))
            verts = head(swept).vertices  # (T, V, 3)
            centre = 0.5 * (verts[0].amin(0) + verts[0].amax(0))
            radius = (verts - centre).norm(dim=-1).amax()
            cam = torch.stack([(1 - 0.08) / radius, -centre[0], -centre[1]]).expand(n, 3)
            rendered = [renderer.render_world(verts[i:i + batch_size], WeakPerspectiveCamera(cam[i:i + batch_size]),
                                              albedo.expand(min(batch_size, n - i), -1, -1, -1),
                                              light.expand(min(batch_size, n - i), -1, -1), interior=interior)
                        for i in range(0, n, batch_size)]
            imgs = torch.cat([(r.image + 1 - r.alpha).clamp(0, 1) for r in rendered])
            save(f"expression_{name}", np.stack([texture_to_uint8(f) for f in imgs]))
            advance(f"expression_{name}")

        if "interpolation" in kinds:
            z = pipeline.latents(list(seeds))
            t = torch.arange(int(frames), dtype=torch.float32, device=dev) / int(frames)
            segments = []
            for a, b in zip(range(len(seeds) - 1), range(1, len(seeds))):
                if interpolation_space == "z":
                    segments.append(pipeline.mapping(slerp(z[a], z[b], t), truncation_psi))
                else:
                    wa, wb = pipeline.mapping(z[a:b + 1], truncation_psi)
                    segments.append(lerp(wa, wb, t))
            ws = torch.cat(segments)  # (T·(S-1), num_ws, w_dim)
            parts = []
            for i in range(0, ws.shape[0], batch_size):
                r = pipeline.from_ws(ws[i:i + batch_size])
                parts.append(_tile([r.image, r.render, r.albedo], int(resolution) // 2 * 2))
            save("interpolation_" + "_".join(str(int(s)) for s in seeds), np.concatenate(parts))
            advance("interpolation")

    log.info("video: wrote %d files -> %s", len(written), out)
    return out
