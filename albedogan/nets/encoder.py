"""DECA-style coarse encoder: torchvision ResNet-50 (no fc) + MLP 2048 -> 1024 -> 236.

Input: (N, 3, 224, 224) RGB in [0, 1], face crops (DECA's landmark-box crop); no ImageNet normalisation (DECA
was trained without it). Output: :class:`EncoderOutput`, split exactly like DECA's ``E_flame``:
shape 0:100, tex 100:150, expression 150:200, pose 200:206, cam 206:209, light 209:236 (-> 9 x 3).
Parameter names match ``deca_model.tar['E_flame']`` (``encoder.*`` torchvision names, ``layers.0``, ``layers.2``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torchvision.models import resnet50

from albedogan.utils.shapes import assert_shape

__all__ = [
    "AMBIENT_LIGHT_DC",
    "CompactEncoder",
    "DECA_OUTPUT_SIZES",
    "DecaEncoder",
    "ENCODER_INPUT_SIZE",
    "EncoderOutput",
    "split_encoder_parameters",
]

ENCODER_INPUT_SIZE = 224
"""Side of the square input crop in pixels."""

DECA_OUTPUT_SIZES: dict[str, int] = {"shape": 100, "tex": 50, "expression": 50, "pose": 6, "cam": 3, "light": 27}
"""Output slices in DECA's order (sums to 236)."""


@dataclass(frozen=True)
class EncoderOutput:
    """Per-image estimates of the coarse encoder (all float, batch-first).

    Attributes:
        shape: (N, S) FLAME shape coefficients (S = 100 for DECA).
        tex: (N, T) FLAME texture-space coefficients (T = 50).
        expression: (N, E) FLAME expression coefficients (E = 50).
        pose: (N, 6) axis-angle radians: global rotation (0:3) and jaw (3:6).
        cam: (N, 3) weak-perspective camera [s, tx, ty] (see ``albedogan.render`` for the projection).
        light: (N, 9, 3) second-order SH lighting coefficients, RGB last.
    """

    shape: torch.Tensor
    tex: torch.Tensor
    expression: torch.Tensor
    pose: torch.Tensor
    cam: torch.Tensor
    light: torch.Tensor

    def detach(self) -> "EncoderOutput":
        """Copy with every tensor detached."""
        return EncoderOutput(**{k: getattr(self, k).detach() for k in DECA_OUTPUT_SIZES})


class DecaEncoder(nn.Module):
    """ResNet-50 + MLP regressor of FLAME/camera/light parameters.

    Args:
        output_sizes: ordered sizes of ``shape, tex, expression, pose, cam, light`` (DECA's by default). ``pose``
            must be 6, ``cam`` 3 and ``light`` 27 (9 SH bands x RGB).
        hidden_dim: width of the MLP's hidden layer (1024).
    """

    def __init__(self, output_sizes: Mapping[str, int] | None = None, hidden_dim: int = 1024) -> None:
        super().__init__()
        sizes = dict(DECA_OUTPUT_SIZES if output_sizes is None else output_sizes)
        if list(sizes) != list(DECA_OUTPUT_SIZES):
            raise ValueError(f"DecaEncoder: output_sizes keys must be {list(DECA_OUTPUT_SIZES)} in order, got {list(sizes)}")
        if sizes["pose"] != 6 or sizes["cam"] != 3 or sizes["light"] != 27:
            raise ValueError(f"DecaEncoder: pose/cam/light sizes must be 6/3/27, got {sizes}")
        self.output_sizes = {k: int(v) for k, v in sizes.items()}
        self.out_dim = sum(self.output_sizes.values())
        backbone = resnet50(weights=None)  # never downloads; weights come from deca_model.tar
        backbone.fc = nn.Identity()
        self.encoder = backbone
        self.layers = nn.Sequential(nn.Linear(2048, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, self.out_dim))

    @property
    def output_layer(self) -> nn.Linear:
        """The last linear layer (its output rows follow :attr:`output_sizes`, shape rows first)."""
        return self.layers[2]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, 224, 224) RGB [0, 1] -> (N, 236) raw parameter vector in DECA's order."""
        assert_shape(images, [None, 3, ENCODER_INPUT_SIZE, ENCODER_INPUT_SIZE], "DecaEncoder input")
        return self.layers(self.encoder(images))

    def split(self, params: torch.Tensor) -> EncoderOutput:
        """Split a (N, out_dim) vector into :class:`EncoderOutput` (light reshaped to (N, 9, 3))."""
        return split_encoder_parameters(params, self.output_sizes)

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        """Encode face crops.

        Args:
            images: (N, 3, 224, 224) float RGB in [0, 1], not ImageNet-normalised.

        Returns:
            :class:`EncoderOutput`.
        """
        return self.split(self.features(images))


AMBIENT_LIGHT_DC = (4 * torch.pi) ** 0.5
"""First SH coefficient that gives shading 1 everywhere (``c_0 = 1 / sqrt(4 pi)``, see ``render.sh_lighting``)."""


def split_encoder_parameters(params: torch.Tensor, sizes: Mapping[str, int]) -> EncoderOutput:
    """Split a (N, sum(sizes)) vector in DECA's order into :class:`EncoderOutput` (light -> (N, 9, 3))."""
    assert_shape(params, [None, sum(sizes.values())], "encoder parameters")
    parts = dict(zip(sizes, torch.split(params, list(sizes.values()), dim=1)))
    parts["light"] = parts["light"].reshape(params.shape[0], 9, 3)  # (N, 27) -> (N, 9, 3)
    return EncoderOutput(**parts)


class CompactEncoder(nn.Module):
    """Small CNN with DECA's output split, trainable on CPU (the embedded world's encoder).

    ``stride-2 3x3 conv + GroupNorm + LeakyReLU`` per entry of ``channels``, a pooling step (below), then an MLP
    whose last layer is zero-initialised, so the untrained outputs equal the priors:
    ``cam = camera_prior + output_scale["cam"] * raw_cam``, ``light = light_prior + output_scale["light"] *
    raw_light``, other codes ``output_scale[k] * raw``.

    Pooling of the final (N, C, h, w) feature map (h = w = ``input_size / 2**len(channels)``, rounded up):

    * ``"mean"``: global average pooling -> (N, C). Translation-invariant: it discards *where* features are, which
      is what face shape is (landmark positions); the embedded world's shape error stays at the mean face with it.
    * ``"flatten"``: the whole map -> (N, C h w); keeps every position (use a small final map).
    * ``"spatial_softmax"``: per channel, the softmax-weighted mean (x, y) position over the map in [-1, 1]
      (a learned keypoint) concatenated with the channel mean -> (N, 3 C).

    Args:
        input_size: side of the square input crop (pixels).
        output_sizes: ordered sizes in DECA's order (``shape, tex, expression, pose, cam, light``).
        channels: conv widths (one stride-2 stage each).
        hidden_dim: MLP hidden width.
        camera_prior: ``[s, tx, ty]`` predicted when untrained (crop NDC; s in NDC units per metre, t in metres).
        light_prior: (27,) SH coefficients (row-major 9 x 3) predicted when untrained; default ambient white light
            of shading 1 (:data:`AMBIENT_LIGHT_DC` in band 0).
        output_scale: multiplier of the raw output per code name (``shape, tex, expression, pose, cam, light``;
            default 1): the size of one unit of the network's output in each code's units. Matching it to the
            code's spread (e.g. cam 0.05: translations are centimetres) keeps every output equally easy to learn.
        pooling: ``"mean"``, ``"flatten"`` or ``"spatial_softmax"`` (see above). It changes the shape of
            ``head.0.weight``, so weights load only into an encoder built with the same pooling.
    """

    POOLINGS = ("mean", "flatten", "spatial_softmax")

    def __init__(
        self,
        input_size: int = 64,
        output_sizes: Mapping[str, int] | None = None,
        channels: Sequence[int] = (16, 32, 64, 128),
        hidden_dim: int = 256,
        camera_prior: Sequence[float] = (7.0, 0.0, 0.0),
        light_prior: Optional[Sequence[float]] = None,
        output_scale: Mapping[str, float] | None = None,
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if pooling not in self.POOLINGS:
            raise ValueError(f"CompactEncoder: pooling must be one of {self.POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        sizes = dict(DECA_OUTPUT_SIZES if output_sizes is None else output_sizes)
        if list(sizes) != list(DECA_OUTPUT_SIZES) or sizes["pose"] != 6 or sizes["cam"] != 3 or sizes["light"] != 27:
            raise ValueError(
                f"CompactEncoder: output_sizes must have keys {list(DECA_OUTPUT_SIZES)} in order with pose/cam/light "
                f"= 6/3/27, got {sizes}"
            )
        self.output_sizes = {k: int(v) for k, v in sizes.items()}
        self.out_dim = sum(self.output_sizes.values())
        self.input_size = int(input_size)
        layers: list[nn.Module] = []
        cin = 3
        for cout in channels:
            layers += [nn.Conv2d(cin, int(cout), 3, stride=2, padding=1), nn.GroupNorm(min(8, int(cout)), int(cout)),
                       nn.LeakyReLU(0.2)]
            cin = int(cout)
        self.features = nn.Sequential(*layers)
        side = self.input_size
        for _ in channels:
            side = (side - 1) // 2 + 1  # stride 2, kernel 3, padding 1
        self.feature_side = side
        pooled = {"mean": cin, "flatten": cin * side * side, "spatial_softmax": 3 * cin}[pooling]
        coords = (torch.arange(side, dtype=torch.float32) + 0.5) * (2.0 / side) - 1.0  # cell centres in [-1, 1]
        grid_y, grid_x = torch.meshgrid(coords, coords, indexing="ij")
        self.register_buffer("feature_grid", torch.stack([grid_x, grid_y]).reshape(2, side * side), persistent=False)
        self.head = nn.Sequential(nn.Linear(pooled, hidden_dim), nn.LeakyReLU(0.2), nn.Linear(hidden_dim, self.out_dim))
        nn.init.zeros_(self.head[2].weight)
        nn.init.zeros_(self.head[2].bias)
        cam = torch.as_tensor(camera_prior, dtype=torch.float32)
        assert_shape(cam, [3], "camera_prior")
        if light_prior is None:
            light = torch.zeros(27)
            light[:3] = AMBIENT_LIGHT_DC
        else:
            light = torch.as_tensor(light_prior, dtype=torch.float32).reshape(-1)
            assert_shape(light, [27], "light_prior")
        scales = {k: 1.0 for k in DECA_OUTPUT_SIZES}
        unknown = set(output_scale or {}) - set(scales)
        if unknown:
            raise ValueError(f"CompactEncoder: output_scale keys must be among {sorted(scales)}, got {sorted(unknown)}")
        scales.update({k: float(v) for k, v in (output_scale or {}).items()})
        scale_vec = torch.cat([torch.full((self.output_sizes[k],), scales[k]) for k in DECA_OUTPUT_SIZES])
        offset = torch.cat([torch.zeros(self.out_dim - 30), cam, light])
        self.register_buffer("output_scale", scale_vec)
        self.register_buffer("output_offset", offset)

    @property
    def output_layer(self) -> nn.Linear:
        """The last (zero-initialised) linear layer; its output rows follow :attr:`output_sizes`, shape rows first."""
        return self.head[2]

    def forward(self, images: torch.Tensor) -> EncoderOutput:
        """Encode crops.

        Args:
            images: (N, 3, S, S) float RGB in [0, 1], S = ``input_size``.

        Returns:
            :class:`EncoderOutput` (cam in crop NDC).
        """
        assert_shape(images, [None, 3, self.input_size, self.input_size], "CompactEncoder input")
        raw = self.head(self.pool(self.features(images * 2.0 - 1.0)))  # (N, out_dim)
        return split_encoder_parameters(raw * self.output_scale + self.output_offset, self.output_sizes)

    def pool(self, feats: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) final feature map -> (N, D) head input (D = C, C h w or 3 C by ``pooling``)."""
        if self.pooling == "mean":
            return feats.mean(dim=(2, 3))
        if self.pooling == "flatten":
            return feats.flatten(1)
        n, c = feats.shape[:2]
        attn = torch.softmax(feats.flatten(2), dim=-1)  # (N, C, h w), sums to 1 over positions
        keypoints = attn @ self.feature_grid.to(feats.dtype).T  # (N, C, 2) expected (x, y) in [-1, 1]
        return torch.cat([keypoints.reshape(n, 2 * c), feats.mean(dim=(2, 3))], dim=1)
