"""Analysis-by-synthesis fitting of FLAME to photos (imports flame / render / losses; inference imports this)."""

from albedogan.fitting.fitter import FIT_PARAMETERS, FaceFitter, FitResult, FitStage, five_points_torch
from albedogan.fitting.masks import skin_mask_from_landmarks

__all__ = ["FIT_PARAMETERS", "FaceFitter", "FitResult", "FitStage", "five_points_torch", "skin_mask_from_landmarks"]
