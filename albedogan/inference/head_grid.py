"""Contact sheets of head-model samples: a grid of random identities and expressions rendered with SH light.

``python infer.py mode=head_grid`` (any ``flame=`` choice) writes ``head_grid.png`` — the quickest look at a FLAME
model (official or the embedded synthetic head) and a check that loaders, LBS and the renderer agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.utils import make_grid

from albedogan.flame.head import HeadModel
from albedogan.inference.export import save_png
from albedogan.render import FaceRenderer, directional_sh_coeffs
from albedogan.render.cameras import framing_camera
from albedogan.structures import FlameParams

__all__ = ["HeadSampler", "render_head_grid", "skin_texture"]


@dataclass(frozen=True)
class HeadSampler:
    """Random FLAME parameters for previews (coefficients are N(0, σ²); poses in radians).

    Attributes:
        shape_std: std of identity coefficients (FLAME's basis is scaled so 1 is one standard deviation).
        exp_std: std of expression coefficients.
        jaw_max: jaw opening is uniform in [0, jaw_max].
        yaw_max: head yaw is uniform in [−yaw_max, yaw_max].
        pitch_max: head pitch is uniform in [−pitch_max, pitch_max].
    """

    shape_std: float = 1.0
    exp_std: float = 0.5
    jaw_max: float = 0.25
    yaw_max: float = 0.6
    pitch_max: float = 0.15

    def sample(self, head: HeadModel, n: int, generator: torch.Generator) -> FlameParams:
        """Draw ``n`` parameter sets on the CPU (move them with ``.to``)."""
        rand = lambda *s: torch.rand(*s, generator=generator)  # noqa: E731
        shape = torch.randn(n, head.n_shape, generator=generator) * self.shape_std
        expression = torch.randn(n, head.n_exp, generator=generator) * self.exp_std
        global_pose = torch.stack(
            [(rand(n) * 2 - 1) * self.pitch_max, (rand(n) * 2 - 1) * self.yaw_max, torch.zeros(n)], dim=-1
        )
        jaw = torch.stack([rand(n) * self.jaw_max, torch.zeros(n), torch.zeros(n)], dim=-1)
        return FlameParams(shape, expression, global_pose, torch.zeros(n, 3), jaw, torch.zeros(n, 6))


def skin_texture(head: HeadModel, size: int = 64, tone: tuple[float, float, float] = (0.80, 0.62, 0.52)) -> torch.Tensor:
    """(1, 3, size, size) uniform skin-tone albedo for geometry previews (on the head's device and dtype)."""
    ref = head.verts_uvs
    return torch.tensor(tone, dtype=ref.dtype, device=ref.device).view(1, 3, 1, 1).expand(1, 3, size, size)


@torch.no_grad()
def render_head_grid(
    head: HeadModel,
    out: str | os.PathLike,
    rows: int = 4,
    cols: int = 4,
    image_size: int = 256,
    seed: int = 0,
    sampler: HeadSampler = HeadSampler(),
    light_direction: tuple[float, float, float] = (-0.4, 0.5, 1.0),
    device: str | torch.device = "cpu",
) -> Path:
    """Render ``rows × cols`` random heads to a PNG contact sheet.

    The first cell is the template (zero parameters, frontal) so the model's mean shape is always shown.

    Returns:
        The written PNG path.
    """
    device = torch.device(device)
    head = head.to(device).eval()
    n = rows * cols
    params = sampler.sample(head, n, torch.Generator().manual_seed(seed))
    for t in (params.shape, params.expression, params.global_pose, params.jaw_pose):
        t[0] = 0.0
    params = params.to(device)
    output = head(params)
    camera = framing_camera(output.vertices)
    renderer = FaceRenderer(head.faces, head.verts_uvs, head.faces_uvs, image_size).to(device)
    light = directional_sh_coeffs(torch.tensor(light_direction, device=device), intensity=0.8, ambient=0.35)
    rendered = renderer.render_world(output.vertices, camera, skin_texture(head), light.expand(n, 9, 3))
    background = torch.full_like(rendered.image, 1.0)
    images = rendered.image * rendered.alpha + background * (1 - rendered.alpha)
    grid = make_grid(images.clamp(0, 1).cpu(), nrow=cols, padding=2, pad_value=1.0)
    return save_png(out, grid)
