"""Networks, one file per family: StyleGAN2 (``stylegan2``), the UV albedo generator (``albedo_generator``),
ArcFace iresnet (``arcface``), SFace (``sface``), the identity-embedding interface (``identity``), MICA
(``mica``), the DECA-style encoder (``encoder``), perceptual distances (``perceptual``) and StyleGAN2's low-level ops
(``ops``). Networks are built from weight files in :mod:`albedogan.assets.convert`. Names are re-exported
lazily, so importing one family does not import the others."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "Generator": "stylegan2", "Discriminator": "stylegan2", "MappingNetwork": "stylegan2",
    "SynthesisNetwork": "stylegan2", "truncate": "stylegan2", "mix_styles": "stylegan2",
    "AlbedoGenerator": "albedo_generator",
    "IResNet": "arcface", "iresnet50": "arcface", "iresnet100": "arcface",
    "SFace": "sface",
    "IdentityEmbedder": "identity",
    "MICA": "mica",
    "DecaEncoder": "encoder", "EncoderOutput": "encoder",
    "PerceptualDistance": "perceptual",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
