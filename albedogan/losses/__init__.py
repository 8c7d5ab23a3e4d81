"""Losses: photometric / log-cosh distillation, landmarks, identity, regularisers, GAN (R1, path length), and
AlbedoGAN's per-phase objectives (``albedogan``). Names are re-exported lazily (one convention for every package:
``_EXPORTS`` maps a public name to its submodule, :func:`albedogan.utils.lazy.lazy_exports`)."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "AlbedoLossWeights": "albedogan", "AlbedoPhaseLoss": "albedogan", "RenderComparison": "albedogan",
    "ShapeLossWeights": "albedogan", "ShapePhaseLoss": "albedogan", "albedo_to_d": "albedogan",
    "PathLengthPenalty": "gan", "d_logistic_loss": "gan", "g_nonsaturating_loss": "gan", "r1_penalty": "gan",
    "IdentityLoss": "identity", "cosine_distance": "identity",
    "deca_landmark_weights": "landmark", "eye_closure_loss": "landmark", "landmark_loss": "landmark",
    "lip_distance_loss": "landmark",
    "albedo_distillation_loss": "photometric", "log_cosh": "photometric", "masked_l1": "photometric",
    "l2_regularizer": "regularizers", "light_regularizer": "regularizers", "total_variation": "regularizers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
