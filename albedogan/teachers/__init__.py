"""Teachers: frozen 2D face generators with a latent space, all behind :class:`~albedogan.teachers.base.Teacher`.

``base`` (the interface), ``procedural`` (:class:`ProceduralTeacher`, the embedded seeded world with exact ground
truth; its prior records and palettes in ``priors``) and ``stylegan2`` (:class:`StyleGAN2Teacher`, StyleGAN2-FFHQ from a rosinality ``.pt`` / NVIDIA ``.pkl``).
Names are re-exported lazily, so importing one teacher does not import the other.
"""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "Teacher": "base",
    "ProceduralTeacher": "procedural", "WorldCodes": "procedural", "palette_lookup": "procedural",
    "SKIN_PALETTE": "priors", "LIP_PALETTE": "priors", "IRIS_PALETTE": "priors", "HAIR_PALETTE": "priors",
    "CoefficientPrior": "priors", "PosePrior": "priors", "CameraPrior": "priors", "LightPrior": "priors",
    "BackgroundPrior": "priors",
    "StyleGAN2Teacher": "stylegan2", "STYLEGAN2_TEACHER_SPEC": "stylegan2",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
