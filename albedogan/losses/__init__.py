"""Losses: photometric / log-cosh distillation, landmarks, identity, regularisers, GAN (R1, path length)."""

from albedogan.losses.gan import PathLengthPenalty, d_logistic_loss, g_nonsaturating_loss, r1_penalty
from albedogan.losses.identity import IdentityLoss, cosine_distance
from albedogan.losses.landmark import deca_landmark_weights, eye_closure_loss, landmark_loss, lip_distance_loss
from albedogan.losses.photometric import albedo_distillation_loss, log_cosh, masked_l1
from albedogan.losses.regularizers import l2_regularizer, light_regularizer, total_variation

__all__ = [
    "IdentityLoss",
    "PathLengthPenalty",
    "albedo_distillation_loss",
    "cosine_distance",
    "d_logistic_loss",
    "deca_landmark_weights",
    "eye_closure_loss",
    "g_nonsaturating_loss",
    "l2_regularizer",
    "landmark_loss",
    "light_regularizer",
    "lip_distance_loss",
    "log_cosh",
    "masked_l1",
    "r1_penalty",
    "total_variation",
]
