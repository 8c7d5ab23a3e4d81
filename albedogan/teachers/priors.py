"""The procedural world's priors (:class:`~albedogan.teachers.procedural.ProceduralTeacher`): frozen records of the
ranges its faces are drawn from, and the colour palettes its albedo is painted with. Config nodes
(``conf/teacher/procedural.yaml``: ``coefficients``, ``pose``, ``camera``, ``light``, ``background``) map 1:1 onto
the records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, TypeVar

__all__ = [
    "BackgroundPrior",
    "CameraPrior",
    "CoefficientPrior",
    "HAIR_PALETTE",
    "IRIS_PALETTE",
    "LIP_PALETTE",
    "LightPrior",
    "PosePrior",
    "SKIN_PALETTE",
    "as_record",
]


SKIN_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.97, 0.83, 0.74),
    (0.92, 0.74, 0.62),
    (0.84, 0.63, 0.50),
    (0.72, 0.51, 0.38),
    (0.58, 0.39, 0.27),
    (0.43, 0.28, 0.19),
    (0.29, 0.19, 0.13),
)


LIP_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.86, 0.55, 0.55),
    (0.78, 0.36, 0.38),
    (0.64, 0.24, 0.27),
    (0.52, 0.30, 0.27),
)


IRIS_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.30, 0.45, 0.65),
    (0.38, 0.48, 0.38),
    (0.48, 0.38, 0.20),
    (0.30, 0.18, 0.09),
    (0.14, 0.08, 0.05),
)


HAIR_PALETTE: tuple[tuple[float, float, float], ...] = (
    (0.80, 0.72, 0.58),
    (0.62, 0.46, 0.26),
    (0.46, 0.20, 0.10),
    (0.26, 0.16, 0.10),
    (0.07, 0.06, 0.05),
)


@dataclass(frozen=True)
class CoefficientPrior:
    """FLAME coefficients of the world (in units of the basis' standard deviations).

    Attributes:
        shape_std: std of identity coefficients.
        n_shape_active: identity coefficients that vary (the rest stay 0); None = all of the head's.
        expression_std: std of expression coefficients.
        n_exp_active: expression coefficients that vary; None = all of the head's.
    """

    shape_std: float = 1.0
    n_shape_active: int | None = None
    expression_std: float = 0.4
    n_exp_active: int | None = None


@dataclass(frozen=True)
class PosePrior:
    """Head rotation ranges (radians): yaw / pitch / roll uniform in [-max, max], jaw opening in [0, jaw_max]."""

    yaw_max: float = 0.45
    pitch_max: float = 0.2
    roll_max: float = 0.1
    jaw_max: float = 0.15


@dataclass(frozen=True)
class CameraPrior:
    """Weak-perspective framing of each head.

    Attributes:
        margin: framing margin (fraction of the NDC half-extent left empty around the head).
        scale_jitter: camera scale factor uniform in [exp(-j), exp(j)].
        translation_jitter: camera translation uniform in [-j, j] image-NDC units (x and y).
    """

    margin: float = 0.12
    scale_jitter: float = 0.08
    translation_jitter: float = 0.06


@dataclass(frozen=True)
class LightPrior:
    """Coloured ambient light plus one coloured directional light, fitted to second-order SH.

    Attributes:
        ambient_range: ambient level range [lo, hi] (0 <= lo <= hi).
        intensity_range: directional light intensity range [lo, hi] (0 <= lo <= hi).
        azimuth_max: light direction azimuth range (radians, around +Z, toward ±X).
        elevation_max: light direction elevation range (radians, toward ±Y).
        tint: max relative deviation of the light colour from white (per channel).
    """

    ambient_range: tuple[float, float] = (0.45, 0.8)
    intensity_range: tuple[float, float] = (0.2, 0.6)
    azimuth_max: float = 1.0
    elevation_max: float = 0.7
    tint: float = 0.12

    def __post_init__(self) -> None:
        for name in ("ambient_range", "intensity_range"):
            rng = tuple(float(v) for v in getattr(self, name))
            if len(rng) != 2 or rng[0] > rng[1] or rng[0] < 0:
                raise ValueError(f"LightPrior: {name} must be [lo, hi] with 0 <= lo <= hi, got {list(rng)}")
            object.__setattr__(self, name, rng)


@dataclass(frozen=True)
class BackgroundPrior:
    """Two-colour gradient backgrounds; ``saturation`` in [0, 1]: 0 = grey only, 1 = saturated."""

    saturation: float = 0.5


_Prior = TypeVar("_Prior")


def as_record(kind: type[_Prior], value: _Prior | Mapping[str, Any] | None, name: str) -> _Prior:
    """A prior record from a record, a mapping of its fields (e.g. a config node) or None (the defaults)."""
    if value is None:
        return kind()
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping) or hasattr(value, "keys"):
        fields = {str(k): value[k] for k in value.keys()}
        fields.pop("_target_", None)
        try:
            return kind(**fields)
        except TypeError as err:
            raise ValueError(f"ProceduralTeacher: {name}: {err} (fields of {kind.__name__})") from err
    raise TypeError(f"ProceduralTeacher: {name} must be a {kind.__name__} or a mapping, got {type(value).__name__}")
