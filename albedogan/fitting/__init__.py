"""Analysis-by-synthesis fitting of FLAME to photos (imports flame / render / losses; inference imports this)."""

from albedogan.fitting.fitter import FIT_PARAMETERS, FaceFitter, FitResult, FitStage, five_points_torch
from albedogan.fitting.frames import crop_estimate_to_source
from albedogan.fitting.landmark_flame import landmark_flame
from albedogan.fitting.masks import skin_mask_from_landmarks
from albedogan.fitting.optim import PackedAdam

__all__ = ["FIT_PARAMETERS", "FaceFitter", "FitResult", "FitStage", "PackedAdam", "crop_estimate_to_source",
           "five_points_torch", "landmark_flame", "skin_mask_from_landmarks"]
