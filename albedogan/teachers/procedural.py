"""``ProceduralTeacher``: the embedded world — a frozen, seeded "generator" whose images come with ground truth.

The world mirrors a StyleGAN2 teacher's interface: ``z (N, z_dim) -> ws (N, num_ws, w_dim) -> image``. Everything is
fixed by ``seed``:

* **Mapping** z -> w: 2nd-moment normalisation (as StyleGAN) then ``mapping_layers`` random, *untrained* lrelu
  layers (He-scaled Gaussian weights drawn from ``seed``); w is broadcast to ``num_ws`` rows. ``w_avg`` is the mean
  of ``calibration_samples`` mapped seeded z, and truncation moves w toward it (``w_avg + psi (w - w_avg)``).
* **Decoding** w -> world: w (the mean of the W+ rows) is centred on ``w_avg``, whitened with the calibration
  covariance and projected by one fixed random linear head into unit-variance "codes" (code 0 = the mean world,
  reached exactly at ``psi = 0``). Codes are squashed into the configured ranges: Gaussian-like quantities (FLAME
  shape/expression) as ``k std tanh(code / k)`` with k = 3, bounded ones (angles, colours, palette positions) as
  ``erf(code / sqrt 2)``, which is uniform on (-1, 1) for a standard-normal code.
* **Albedo**: a procedural UV map in the head's UV layout, painted from feature maps computed once from the
  template mesh: every texel's 3D template position (``UVSpace.attribute_map``) is compared with the template's 68
  landmarks (lips = inside the outer-lip polygon, brows = near the brow polylines, eye liner = near the eye
  contours, cheeks/nose = Gaussian blobs) and the eyeballs are found from the FLAME skinning weights of the eye
  joints (iris/pupil = angle to the eye's forward axis). Skin tone is a position in a light-to-dark palette; fine
  variation is smooth noise in 3D (even in x, so left/right symmetric) plus a small odd part (asymmetry).
* **Image**: FLAME(params) -> vertices; a weak-perspective camera framing the head (``framing_camera``) with scale
  and translation jitter; coloured ambient + directional SH light; a smooth two-colour gradient background.

The truth (``GroundTruth``) is exact: re-rendering the returned params, camera, light and albedo with a
:class:`~albedogan.render.FaceRenderer` of the same size reproduces the image on ``alpha`` (after the clamp to
[0, 1] that the image also gets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from albedogan.flame.head import HeadModel
from albedogan.nets.stylegan2 import normalize_2nd_moment, truncate
from albedogan.render import FaceRenderer, UVSpace, WeakPerspectiveCamera, directional_sh_coeffs
from albedogan.render.cameras import framing_camera
from albedogan.structures import FaceEstimate, FlameParams, GroundTruth, TeacherSample
from albedogan.teachers.base import Teacher
from albedogan.teachers.priors import (
    HAIR_PALETTE,
    IRIS_PALETTE,
    LIP_PALETTE,
    SKIN_PALETTE,
    BackgroundPrior,
    CameraPrior,
    CoefficientPrior,
    LightPrior,
    PosePrior,
    as_record,
)
from albedogan.utils.shapes import assert_shape

__all__ = ["ProceduralTeacher", "WorldCodes", "palette_lookup"]

#: Skin albedo palette from light to dark (linear RGB in [0, 1]); a tone t in [0, 1] interpolates it.
#: Lip colour palette (pale pink -> red -> brown), multiplied with the local skin colour's brightness.
#: Iris palette: blue, grey-green, hazel, brown, dark brown.
#: Hair / brow palette: platinum, blond, auburn, brown, black.

# iBUG-68 landmark index groups (rows of FlameOutput.landmarks3d).
_BROW_R, _BROW_L = list(range(17, 22)), list(range(22, 27))
_EYE_R, _EYE_L = list(range(36, 42)), list(range(42, 48))
_LIP_OUTER = list(range(48, 60))
_CHEEK_R, _CHEEK_L = [1, 31, 41, 48], [15, 35, 46, 54]
_NOSE_TIP = 30
_EYES_TO_EARS_DEPTH = 0.06  # m behind the front of the eyes: the hair's front-to-back transition (in front of the ears)
_LEFT_EYE_JOINT, _RIGHT_EYE_JOINT = 3, 4  # FLAME joint order: global, neck, jaw, left eye, right eye

_N_NOISE_SYM = 12
_N_NOISE_ASYM = 6
_TANH_K = 3.0


def palette_lookup(palette: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation in a colour palette.

    Args:
        palette: (P, 3) float colours, P >= 2, ordered.
        t: (N,) float positions in [0, 1] (clamped): 0 = first colour, 1 = last.

    Returns:
        (N, 3) colours, dtype of ``palette``.
    """
    p = palette.shape[0]
    x = t.clamp(0, 1) * (p - 1)  # (N,)
    lo = x.floor().clamp(max=p - 2)
    frac = (x - lo)[:, None]
    idx = lo.long()
    return palette[idx] * (1 - frac) + palette[idx + 1] * frac


def _segments_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from each point to the nearest of K segments.

    Args:
        points: (M, D) float (D = 2 or 3).
        a, b: (K, D) float segment end points.

    Returns:
        (M,) float distances (same units as the inputs).
    """
    ab = b - a  # (K, D)
    ap = points[:, None, :] - a[None]  # (M, K, 2)
    t = ((ap * ab[None]).sum(-1) / (ab * ab).sum(-1).clamp_min(1e-12)[None]).clamp(0, 1)  # (M, K)
    closest = a[None] + t[..., None] * ab[None]  # (M, K, 2)
    return (points[:, None, :] - closest).norm(dim=-1).amin(-1)


def _polygon_sdf(points: torch.Tensor, polygon: torch.Tensor) -> torch.Tensor:
    """Signed distance of 2D points to a closed polygon (negative inside; crossing-number inside test).

    Args:
        points: (M, 2) float.
        polygon: (K, 2) float vertices in order (closed implicitly).

    Returns:
        (M,) float signed distances.
    """
    a, b = polygon, polygon.roll(-1, dims=0)
    dist = _segments_distance(points, a, b)
    px, py = points[:, None, 0], points[:, None, 1]  # (M, 1)
    ax, ay, bx, by = a[None, :, 0], a[None, :, 1], b[None, :, 0], b[None, :, 1]  # (1, K)
    straddles = (ay > py) != (by > py)
    x_cross = ax + (py - ay) * (bx - ax) / torch.where((by - ay).abs() < 1e-12, torch.full_like(by, 1e-12), by - ay)
    inside = ((straddles & (px < x_cross)).sum(-1) % 2) == 1
    return torch.where(inside, -dist, dist)


def _polyline_segments(points: torch.Tensor, closed: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, D) ordered points -> segment end points ((S, D), (S, D)), S = K (closed) or K - 1."""
    if closed:
        return points, points.roll(-1, dims=0)
    return points[:-1], points[1:]


@dataclass(frozen=True)
class WorldCodes:
    """The decoded world of a batch of w (what :meth:`ProceduralTeacher.decode` returns).

    Attributes:
        params: FLAME parameters (shape/expression coefficients, poses in radians).
        cam_jitter: (N, 3) float ``[log-scale factor, tx, ty]``: camera scale multiplier ``exp(.)`` and image-NDC
            translation added to the framing camera.
        light: (N, 9, 3) float SH coefficients (FLAME frame).
        albedo_codes: (N, A) float squashed albedo parameters in [-1, 1] (layout: ``ProceduralTeacher.ALBEDO_CODES``
            then symmetric and asymmetric noise coefficients).
        background_codes: (N, 7) float in [-1, 1]: two RGB colours and a gradient angle.
    """

    params: FlameParams
    cam_jitter: torch.Tensor
    light: torch.Tensor
    albedo_codes: torch.Tensor
    background_codes: torch.Tensor


class ProceduralTeacher(Teacher):
    """A seeded procedural face world with the teacher interface and exact ground truth.

    Args:
        head: the head model whose mesh, UV layout and landmarks the world uses (registered as a submodule, so
            ``.to()`` moves it too).
        image_size: output images are (N, 3, image_size, image_size).
        uv_resolution: albedo maps are (N, 3, uv_resolution, uv_resolution) in the head's UV layout.
        z_dim: input latent size.
        w_dim: intermediate latent size.
        num_ws: rows of W+ (the same w is broadcast; :meth:`synthesize` decodes the mean row).
        truncation_psi: default truncation toward ``w_avg`` (1 = none).
        seed: fixes the world (mapping weights, decoding head, noise fields).
        mapping_layers: depth of the random mapping MLP (8 as in StyleGAN2).
        calibration_samples: seeded z samples used for ``w_avg`` and the whitening statistics.
        coefficients: :class:`CoefficientPrior` (or a mapping of its fields).
        pose: :class:`PosePrior`.
        camera: :class:`CameraPrior`.
        light: :class:`LightPrior`.
        background: :class:`BackgroundPrior`.
    """

    #: Leading albedo codes (each squashed to [-1, 1]); noise coefficients follow.
    ALBEDO_CODES: tuple[str, ...] = (
        "skin_tone",
        "undertone",
        "lip_colour",
        "lip_strength",
        "brow_thickness",
        "brow_density",
        "hair_colour",
        "hairline",
        "iris_colour",
        "iris_size",
        "blush",
        "liner",
        "grain",
    )

    def __init__(
        self,
        head: HeadModel,
        image_size: int = 224,
        uv_resolution: int = 256,
        z_dim: int = 512,
        w_dim: int = 512,
        num_ws: int = 14,
        truncation_psi: float = 1.0,
        seed: int = 0,
        mapping_layers: int = 8,
        calibration_samples: int = 2048,
        coefficients: CoefficientPrior | Mapping[str, Any] | None = None,
        pose: PosePrior | Mapping[str, Any] | None = None,
        camera: CameraPrior | Mapping[str, Any] | None = None,
        light: LightPrior | Mapping[str, Any] | None = None,
        background: BackgroundPrior | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("image_size", image_size), ("uv_resolution", uv_resolution), ("z_dim", z_dim),
                            ("w_dim", w_dim), ("num_ws", num_ws), ("mapping_layers", mapping_layers),
                            ("calibration_samples", calibration_samples)):
            if int(value) < 1:
                raise ValueError(f"ProceduralTeacher: {name} must be >= 1, got {value}")
        if calibration_samples < 2:
            raise ValueError(f"ProceduralTeacher: calibration_samples must be >= 2, got {calibration_samples}")
        self.coefficient_prior = as_record(CoefficientPrior, coefficients, "coefficients")
        self.pose_prior = as_record(PosePrior, pose, "pose")
        self.camera_prior = as_record(CameraPrior, camera, "camera")
        self.light_prior = as_record(LightPrior, light, "light")
        self.background_prior = as_record(BackgroundPrior, background, "background")
        self.z_dim, self.w_dim, self.num_ws = int(z_dim), int(w_dim), int(num_ws)
        self.image_size, self.uv_resolution = int(image_size), int(uv_resolution)
        self.truncation_psi = float(truncation_psi)
        self.seed = int(seed)
        self.head = head
        n_shape_active, n_exp_active = self.coefficient_prior.n_shape_active, self.coefficient_prior.n_exp_active
        self.n_shape_active = head.n_shape if n_shape_active is None else min(int(n_shape_active), head.n_shape)
        self.n_exp_active = head.n_exp if n_exp_active is None else min(int(n_exp_active), head.n_exp)

        # Code layout: name -> (start, size) in the decoded code vector.
        sizes = [
            ("shape", self.n_shape_active),
            ("expression", self.n_exp_active),
            ("pose", 4),  # pitch, yaw, roll, jaw
            ("camera", 3),
            ("light", 9),  # ambient, intensity, azimuth, elevation, ambient warmth, free tint 3, light warmth
            ("albedo", len(self.ALBEDO_CODES) + _N_NOISE_SYM + _N_NOISE_ASYM),
            ("background", 7),
        ]
        self._layout: dict[str, tuple[int, int]] = {}
        start = 0
        for name, size in sizes:
            self._layout[name] = (start, size)
            start += size
        n_codes = start

        gen = torch.Generator().manual_seed(self.seed)
        dims = [self.z_dim] + [self.w_dim] * mapping_layers
        for i in range(mapping_layers):
            weight = torch.randn(dims[i + 1], dims[i], generator=gen, dtype=torch.float64) * math.sqrt(2.0 / dims[i])
            bias = torch.randn(dims[i + 1], generator=gen, dtype=torch.float64) * 0.1
            self.register_buffer(f"fc{i}_weight", weight.float(), persistent=False)
            self.register_buffer(f"fc{i}_bias", bias.float(), persistent=False)
        self.mapping_layers = mapping_layers

        # Calibration: w_avg, whitening and per-code normalisation from seeded samples (float64, CPU).
        z_cal = torch.randn(calibration_samples, self.z_dim, generator=gen, dtype=torch.float64)
        w_cal = self._map(z_cal, dtype=torch.float64)  # (S, w_dim)
        w_avg = w_cal.mean(0)
        centred = w_cal - w_avg
        cov = centred.T @ centred / (calibration_samples - 1)  # (w_dim, w_dim)
        evals, evecs = torch.linalg.eigh(cov)
        evals = evals.clamp_min(1e-3 * evals.max().clamp_min(1e-12))
        whiten = evecs @ torch.diag(evals.rsqrt()) @ evecs.T  # ZCA, (w_dim, w_dim)
        proj = torch.randn(self.w_dim, n_codes, generator=gen, dtype=torch.float64) / math.sqrt(self.w_dim)
        head_matrix = whiten @ proj  # (w_dim, K)
        code_std = (centred @ head_matrix).std(0).clamp_min(1e-12)
        head_matrix = head_matrix / code_std
        self.register_buffer("w_avg", w_avg.float(), persistent=False)
        self.register_buffer("decode_matrix", head_matrix.float(), persistent=False)

        self.register_buffer("skin_palette", torch.tensor(SKIN_PALETTE), persistent=False)
        self.register_buffer("lip_palette", torch.tensor(LIP_PALETTE), persistent=False)
        self.register_buffer("iris_palette", torch.tensor(IRIS_PALETTE), persistent=False)
        self.register_buffer("hair_palette", torch.tensor(HAIR_PALETTE), persistent=False)
        self._build_feature_maps(gen)
        self.renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, self.image_size)
        self.freeze()

    # ------------------------------------------------------------------------------------------------------------
    # construction helpers

    @torch.no_grad()
    def _build_feature_maps(self, gen: torch.Generator) -> None:
        """Compute the UV feature maps (template geometry -> semantic regions) once, as float32 buffers."""
        head = self.head
        flame = head.flame
        r = self.uv_resolution
        dev = head.verts_uvs.device
        uvspace = UVSpace(head.faces, head.verts_uvs.float(), head.faces_uvs, r).to(dev)
        pos = uvspace.attribute_map(flame.v_template[None].float()).double()[0]  # (3, R, R) metres
        eye_w = uvspace.attribute_map(
            flame.lbs_weights.float()[None, :, [_LEFT_EYE_JOINT, _RIGHT_EYE_JOINT]]
        ).double()[0]  # (2, R, R)
        neutral = head(FlameParams.zeros(1, head.n_shape, head.n_exp, device=dev, dtype=flame.v_template.dtype))
        lmk = neutral.landmarks3d[0].double()  # (68, 3)
        joints = neutral.joints[0].double()  # (5, 3)

        pts = pos.reshape(3, -1).T  # (M, 3)
        xy = pts[:, :2]
        covered = uvspace.coverage.reshape(-1).double() > 0
        eyeball = (eye_w.sum(0).reshape(-1) > 0.5) & covered

        # Front of the face: texels at least as far forward as the face contour landmarks' plane.
        front_z = lmk[_EYE_R + _EYE_L, 2].min() - 0.02
        front = (pts[:, 2] > front_z) & covered & ~eyeball

        lip_sdf = _polygon_sdf(xy, lmk[_LIP_OUTER, :2])
        lip_z = lmk[_LIP_OUTER, 2].min() - 0.015
        lips_front = front & (pts[:, 2] > lip_z)
        # brows: distance on the surface (3D), so the outer ends, which reach round onto the temples (iBUG's brow
        # ends ~0.2 inter-ocular distances beyond the eye corners), keep their width; painted a little further back
        brow_d = torch.minimum(
            _segments_distance(pts, *_polyline_segments(lmk[_BROW_R], closed=False)),
            _segments_distance(pts, *_polyline_segments(lmk[_BROW_L], closed=False)),
        )
        brow_front = (pts[:, 2] > front_z - 0.01) & covered & ~eyeball
        eye_d = torch.minimum(
            _segments_distance(xy, *_polyline_segments(lmk[_EYE_R, :2], closed=True)),
            _segments_distance(xy, *_polyline_segments(lmk[_EYE_L, :2], closed=True)),
        )
        far = torch.full_like(brow_d, 1.0)
        brow_d = torch.where(brow_front, brow_d, far)
        eye_d = torch.where(front, eye_d, far)
        lip_sdf = torch.where(lips_front, lip_sdf, far)

        def blob(centre: torch.Tensor, sigma: float) -> torch.Tensor:
            return torch.exp(-((pts - centre) ** 2).sum(-1) / (2 * sigma**2))

        cheek = torch.maximum(blob(lmk[_CHEEK_R].mean(0), 0.018), blob(lmk[_CHEEK_L].mean(0), 0.018))
        nose = blob(lmk[_NOSE_TIP], 0.012)
        cheek = torch.where(front, cheek, torch.zeros_like(cheek))
        nose = torch.where(front, nose, torch.zeros_like(nose))

        # Eyeballs: cosine between the texel direction from its eye centre and the eye's forward axis (+Z).
        left = pts[:, 0] > 0
        centre = torch.where(left[:, None], joints[_LEFT_EYE_JOINT][None], joints[_RIGHT_EYE_JOINT][None])
        eye_cos = F.normalize(pts - centre, dim=-1)[:, 2]
        eye_cos = torch.where(eyeball, eye_cos, torch.full_like(eye_cos, -1.0))

        # Hair: above a hairline that drops toward the back of the head; measured relative to the brows, its
        # front-to-back transition placed by depth behind the eyes (not by the contour landmarks, whose placement is a
        # landmark convention: iBUG's outline runs in front of the ears).
        brow_y = lmk[_BROW_R + _BROW_L, 1].mean()
        ear_z = lmk[_EYE_R + _EYE_L, 2].min() - _EYES_TO_EARS_DEPTH
        back = torch.sigmoid(-(pts[:, 2] - ear_z - 0.01) / 0.015)  # 0 at the face, 1 behind the ears
        hair_height = pts[:, 1] - brow_y - 0.035 * (1 - back) + 0.075 * back  # > 0 above the base hairline (m)
        hair_height = torch.where(covered & ~eyeball, hair_height, torch.full_like(hair_height, -1.0))

        # Smooth noise in 3D: sum of random sinusoids of (|x|, y, z) (symmetric) and of (x, y, z) (odd part).
        def sinusoids(n: int, coords: torch.Tensor, freq: float) -> torch.Tensor:
            k = (torch.randn(n, 3, generator=gen, dtype=torch.float64) * freq).to(dev)  # rad/m
            phase = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.pi).to(dev)
            return torch.sin(coords @ k.T + phase) * math.sqrt(2.0)  # (M, n), unit RMS

        sym_coords = torch.stack([pts[:, 0].abs(), pts[:, 1], pts[:, 2]], -1)
        noise_sym = sinusoids(_N_NOISE_SYM, sym_coords, 40.0)  # (M, Ks)
        noise_asym = sinusoids(_N_NOISE_ASYM, pts, 40.0) * torch.tanh(pts[:, :1] / 0.02)  # odd in x
        grain = (sinusoids(24, sym_coords, 400.0).sum(-1) / math.sqrt(24.0))[:, None]  # (M, 1) fine grain

        def as_map(t: torch.Tensor) -> torch.Tensor:  # (M, C) or (M,) -> (1, C, R, R) float32
            t = t[:, None] if t.ndim == 1 else t
            return t.T.reshape(1, -1, r, r).float().contiguous()

        self.register_buffer("map_lip_sdf", as_map(lip_sdf), persistent=False)
        self.register_buffer("map_brow_dist", as_map(brow_d), persistent=False)
        self.register_buffer("map_eye_dist", as_map(eye_d), persistent=False)
        self.register_buffer("map_cheek", as_map(cheek), persistent=False)
        self.register_buffer("map_nose", as_map(nose), persistent=False)
        self.register_buffer("map_eyeball", as_map(eyeball.double()), persistent=False)
        self.register_buffer("map_eye_cos", as_map(eye_cos), persistent=False)
        self.register_buffer("map_hair_height", as_map(hair_height), persistent=False)
        self.register_buffer("map_noise_sym", as_map(noise_sym), persistent=False)
        self.register_buffer("map_noise_asym", as_map(noise_asym), persistent=False)
        self.register_buffer("map_grain", as_map(grain), persistent=False)

    def _map(self, z: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """(N, z_dim) -> (N, w_dim) through the fixed random MLP (no truncation, no broadcast)."""
        dtype = dtype or z.dtype
        x = normalize_2nd_moment(z.to(dtype))
        for i in range(self.mapping_layers):
            weight = getattr(self, f"fc{i}_weight").to(dtype)
            bias = getattr(self, f"fc{i}_bias").to(dtype)
            x = F.leaky_relu(x @ weight.T + bias, 0.2)
        return x

    # ------------------------------------------------------------------------------------------------------------
    # teacher interface

    def mapping(self, z: torch.Tensor, psi: float | None = None) -> torch.Tensor:
        """Map z to truncated W+ latents.

        Args:
            z: (N, z_dim) float latents (standard normal).
            psi: truncation toward ``w_avg`` (default ``truncation_psi``; 0 gives the mean face).

        Returns:
            ws: (N, num_ws, w_dim) float in the dtype of the teacher's buffers (each row is the same w).
        """
        assert_shape(z, [None, self.z_dim], "z")
        psi = self.truncation_psi if psi is None else float(psi)
        dtype = self.w_avg.dtype
        w = self._map(z.to(device=self.w_avg.device, dtype=dtype))
        ws = w[:, None, :].expand(-1, self.num_ws, -1)  # (N, num_ws, w_dim)
        return truncate(ws, self.w_avg, psi)

    def _codes(self, ws: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, num_ws, w_dim) -> named standard-normal-like code blocks (N, size)."""
        w = ws.mean(1)  # (N, w_dim)
        codes = (w - self.w_avg.to(w.dtype)) @ self.decode_matrix.to(w.dtype)  # (N, K)
        return {name: codes[:, s : s + n] for name, (s, n) in self._layout.items()}

    @staticmethod
    def _bounded(code: torch.Tensor) -> torch.Tensor:
        """Standard-normal code -> (-1, 1), uniform for N(0, 1) codes."""
        return torch.erf(code / math.sqrt(2.0))

    @staticmethod
    def _gaussian(code: torch.Tensor, std: float) -> torch.Tensor:
        """Standard-normal code -> ``std``-scaled value softly limited to ±3 std."""
        return _TANH_K * std * torch.tanh(code / _TANH_K)

    def decode(self, ws: torch.Tensor) -> WorldCodes:
        """Decode W+ latents into the world's parameters (deterministic; the mean row of ``ws`` is used).

        Args:
            ws: (N, num_ws, w_dim) float W+ latents.

        Returns:
            :class:`WorldCodes` in the dtype/device of ``ws``.
        """
        assert_shape(ws, [None, None, self.w_dim], "ws")
        c = self._codes(ws)
        n, dtype, device = ws.shape[0], ws.dtype, ws.device
        shape = ws.new_zeros(n, self.head.n_shape)
        cp = self.coefficient_prior
        shape = torch.cat([self._gaussian(c["shape"], float(cp.shape_std)), shape[:, self.n_shape_active :]], -1)
        exp = ws.new_zeros(n, self.head.n_exp)
        exp = torch.cat([self._gaussian(c["expression"], float(cp.expression_std)), exp[:, self.n_exp_active :]], -1)
        pose = self._bounded(c["pose"])  # (N, 4)
        zeros = ws.new_zeros(n, 1)
        pp = self.pose_prior
        global_pose = torch.cat(
            [pose[:, 0:1] * float(pp.pitch_max), pose[:, 1:2] * float(pp.yaw_max), pose[:, 2:3] * float(pp.roll_max)],
            -1,
        )
        jaw = torch.cat([(pose[:, 3:4] + 1) * 0.5 * float(pp.jaw_max), zeros, zeros], -1)
        params = FlameParams(shape, exp, global_pose, ws.new_zeros(n, 3), jaw, ws.new_zeros(n, 6))

        cam = self._bounded(c["camera"])
        cap = self.camera_prior
        cam_jitter = torch.cat([cam[:, :1] * float(cap.scale_jitter), cam[:, 1:] * float(cap.translation_jitter)], -1)

        lt = self._bounded(c["light"])  # (N, 9)
        lerp = lambda rng, u: rng[0] + (rng[1] - rng[0]) * (u + 1) * 0.5  # noqa: E731
        # colour: a warm/cool temperature (red up, blue down) plus a smaller free tint per channel
        warm = torch.tensor([1.0, 0.0, -1.0], dtype=dtype, device=device)
        lp = self.light_prior
        tint = float(lp.tint)
        ambient_col = 1 + tint * (lt[:, 4:5] * warm + 0.3 * lt[:, 5:8])  # (N, 3)
        light_col = 1 + tint * (lt[:, 8:9] * warm + 0.3 * lt[:, 5:8].flip(-1))  # (N, 3)
        ambient = lerp(lp.ambient_range, lt[:, 0:1]) * ambient_col  # (N, 3)
        intensity = lerp(lp.intensity_range, lt[:, 1:2]) * light_col  # (N, 3)
        az, el = lt[:, 2] * float(lp.azimuth_max), lt[:, 3] * float(lp.elevation_max)
        direction = torch.stack([torch.sin(az) * torch.cos(el), torch.sin(el), torch.cos(az) * torch.cos(el)], -1)
        light = directional_sh_coeffs(direction, intensity=intensity, ambient=ambient)  # (N, 9, 3)
        light = light.to(device=device, dtype=dtype)

        return WorldCodes(
            params=params,
            cam_jitter=cam_jitter,
            light=light,
            albedo_codes=self._bounded(c["albedo"]),
            background_codes=self._bounded(c["background"]),
        )

    def albedo(self, albedo_codes: torch.Tensor) -> torch.Tensor:
        """Paint UV albedo maps.

        Args:
            albedo_codes: (N, A) float in [-1, 1] (``WorldCodes.albedo_codes``).

        Returns:
            (N, 3, R, R) float albedo in [0, 1], R = ``uv_resolution``, the head's UV layout (row 0 = v = 1).
        """
        k = len(self.ALBEDO_CODES)
        assert_shape(albedo_codes, [None, k + _N_NOISE_SYM + _N_NOISE_ASYM], "albedo_codes")
        dtype = albedo_codes.dtype
        a = {name: albedo_codes[:, i] for i, name in enumerate(self.ALBEDO_CODES)}  # each (N,)
        unit = lambda u: (u + 1) * 0.5  # noqa: E731  [-1, 1] -> [0, 1]
        col = lambda v: v[:, :, None, None]  # noqa: E731  (N, 3) -> (N, 3, 1, 1)
        sc = lambda v: v[:, None, None, None]  # noqa: E731  (N,) -> (N, 1, 1, 1)
        m = {name: getattr(self, f"map_{name}").to(dtype) for name in (
            "lip_sdf", "brow_dist", "eye_dist", "cheek", "nose", "eyeball", "eye_cos", "hair_height", "noise_sym",
            "noise_asym", "grain")}

        # Skin: palette tone, warm/cool undertone, smooth symmetric noise, a little asymmetry and grain.
        skin = palette_lookup(self.skin_palette.to(dtype), unit(a["skin_tone"]))  # (N, 3)
        undertone = torch.stack([a["undertone"], torch.zeros_like(a["undertone"]), -a["undertone"]], -1) * 0.03
        skin = col(skin * (1 + undertone))
        noise_s = albedo_codes[:, k : k + _N_NOISE_SYM]  # (N, Ks)
        noise_a = albedo_codes[:, k + _N_NOISE_SYM :]  # (N, Ka)
        smooth = torch.einsum("nk,kij->nij", noise_s, m["noise_sym"][0]) / math.sqrt(_N_NOISE_SYM)
        asym = torch.einsum("nk,kij->nij", noise_a, m["noise_asym"][0]) / math.sqrt(_N_NOISE_ASYM)
        grain = m["grain"] * sc(0.01 + 0.015 * unit(a["grain"]))
        variation = 1 + 0.05 * smooth[:, None] + 0.015 * asym[:, None] + grain  # (N, 1, R, R)
        albedo = skin * variation
        # Blush on the cheeks and a redder nose tip.
        redden = torch.tensor([1.0, 0.8, 0.82], dtype=dtype, device=albedo.device).view(1, 3, 1, 1)
        blush = (m["cheek"] * sc(0.1 + 0.35 * unit(a["blush"])) + 0.25 * m["nose"]).clamp(0, 1)
        albedo = albedo * (1 - blush) + albedo * redden * blush
        # Lips: palette colour scaled by the skin's brightness; soft edge of ~1 mm.
        lip_col = palette_lookup(self.lip_palette.to(dtype), unit(a["lip_colour"]))  # (N, 3)
        lip_col = col(lip_col) * (0.55 + 0.45 * skin.mean(1, keepdim=True) / 0.7)
        lip_w = torch.sigmoid(-m["lip_sdf"] / 0.0012) * sc(0.55 + 0.4 * unit(a["lip_strength"]))
        albedo = albedo * (1 - lip_w) + lip_col * lip_w
        # Hair colour (scalp and brows).
        hair_col = palette_lookup(self.hair_palette.to(dtype), unit(a["hair_colour"]))  # (N, 3)
        brow_half = 0.003 + 0.003 * unit(a["brow_thickness"])  # (N,) metres
        brow_w = torch.sigmoid((sc(brow_half) - m["brow_dist"]) / 0.0008) * sc(0.6 + 0.35 * unit(a["brow_density"]))
        albedo = albedo * (1 - brow_w) + col(hair_col) * 0.7 * brow_w
        # Eye socket shade and a dark lash line along the eye contours.
        socket_w = 0.18 * torch.exp(-((m["eye_dist"] / 0.005) ** 2))
        albedo = albedo * (1 - socket_w)
        liner_w = torch.exp(-((m["eye_dist"] / 0.0015) ** 2)) * sc(0.45 + 0.4 * unit(a["liner"]))
        albedo = albedo * (1 - liner_w) + albedo * 0.2 * liner_w
        hairline = 0.012 * a["hairline"]  # (N,) metres up/down
        hair_w = torch.sigmoid((m["hair_height"] - sc(hairline)) / 0.003)
        hair_tex = col(hair_col) * (1 + 0.1 * smooth[:, None] + 0.12 * m["grain"])
        albedo = albedo * (1 - hair_w) + hair_tex * hair_w
        # Eyeballs: sclera, iris (palette), pupil, by angle from the eye's forward axis.
        iris_cos = math.cos(0.75) - 0.05 * a["iris_size"]  # (N,)
        iris_w = torch.sigmoid((m["eye_cos"] - sc(iris_cos)) / 0.015)
        pupil_w = torch.sigmoid((m["eye_cos"] - math.cos(0.3)) / 0.01)
        iris_col = col(palette_lookup(self.iris_palette.to(dtype), unit(a["iris_colour"])))
        sclera = torch.tensor([0.82, 0.78, 0.74], dtype=dtype, device=albedo.device).view(1, 3, 1, 1)
        eye = sclera * (1 - iris_w) + iris_col * (1 + 0.15 * m["grain"]) * iris_w
        eye = eye * (1 - pupil_w) + 0.03 * pupil_w
        albedo = albedo * (1 - m["eyeball"]) + eye * m["eyeball"]
        return albedo.clamp(0, 1)

    def background(self, background_codes: torch.Tensor) -> torch.Tensor:
        """Smooth two-colour gradient backgrounds.

        Args:
            background_codes: (N, 7) float in [-1, 1]: RGB offsets of two colours and the gradient angle.

        Returns:
            (N, 3, H, W) float in [0, 1], H = W = ``image_size``.
        """
        assert_shape(background_codes, [None, 7], "background_codes")
        n, s = background_codes.shape[0], self.image_size
        b = background_codes
        grey = 0.5 + 0.3 * b[:, 0:1]  # (N, 1) brightness
        c1 = (grey + 0.35 * float(self.background_prior.saturation) * b[:, 1:4]).clamp(0, 1)  # (N, 3)
        c2 = (c1 * (0.55 + 0.3 * (b[:, 4:5] + 1))).clamp(0, 1)
        angle = b[:, 6] * math.pi  # (N,)
        lin = (torch.arange(s, dtype=b.dtype, device=b.device) * 2 + 1) / s - 1  # pixel centres, image NDC
        yy, xx = torch.meshgrid(lin, lin, indexing="ij")  # (H, W)
        ramp = (xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]) * 0.5 + 0.5
        ramp = ramp.clamp(0, 1)[:, None]  # (N, 1, H, W)
        bg = c1[:, :, None, None] * (1 - ramp) + c2[:, :, None, None] * ramp
        return bg.expand(n, 3, s, s)

    def camera(self, vertices: torch.Tensor, cam_jitter: torch.Tensor) -> torch.Tensor:
        """Weak-perspective camera framing each head, with jitter.

        Args:
            vertices: (N, V, 3) float posed FLAME vertices (metres).
            cam_jitter: (N, 3) ``[log-scale, tx, ty]`` (:class:`WorldCodes`), translation in image-NDC units.

        Returns:
            (N, 3) float ``[s, tx, ty]`` (NDC per metre; metres).
        """
        base = framing_camera(vertices, float(self.camera_prior.margin)).cam  # (N, 3)
        scale = base[:, :1] * torch.exp(cam_jitter[:, :1])
        # weak perspective: x_ndc = s (x + tx), so an NDC shift d is a world shift d / s (y is flipped in NDC)
        shift = cam_jitter[:, 1:] * torch.tensor([1.0, -1.0], dtype=vertices.dtype, device=vertices.device) / scale
        return torch.cat([scale, base[:, 1:] + shift], -1)

    @torch.no_grad()
    def synthesize(self, ws: torch.Tensor) -> TeacherSample:
        """Render the faces of W+ latents, with their ground truth.

        Args:
            ws: (N, num_ws, w_dim) float W+ latents.

        Returns:
            :class:`TeacherSample` with ``image`` (N, 3, H, W) in [0, 1], ``ws``, ``z = None`` and ``truth``:
            FLAME params, camera ``[s, tx, ty]``, SH light (N, 9, 3), albedo (N, 3, R, R) in [0, 1], projected
            landmarks (N, 68, 2) image NDC (x right, y down) and the head's coverage ``alpha`` (N, 1, H, W).
        """
        assert_shape(ws, [None, None, self.w_dim], "ws")
        dtype = self.w_avg.dtype
        ws = ws.to(device=self.w_avg.device, dtype=dtype)
        world = self.decode(ws)
        flame_out = self.head(world.params)
        cam = self.camera(flame_out.vertices, world.cam_jitter)
        albedo = self.albedo(world.albedo_codes)
        background = self.background(world.background_codes)
        rendered = self.renderer.render_world(
            flame_out.vertices, WeakPerspectiveCamera(cam), albedo, world.light,
            landmarks=flame_out.landmarks2d, background=background,
        )
        truth = GroundTruth(
            estimate=FaceEstimate(params=world.params, cam=cam, light=world.light),
            albedo=albedo,
            landmarks2d=rendered.landmarks,
            alpha=rendered.alpha,
        )
        return TeacherSample(image=rendered.image.clamp(0, 1), ws=ws, z=None, truth=truth)

    def extra_repr(self) -> str:
        return (
            f"z_dim={self.z_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}, image_size={self.image_size}, "
            f"uv_resolution={self.uv_resolution}, seed={self.seed}, truncation_psi={self.truncation_psi}"
        )
