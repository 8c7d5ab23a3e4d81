"""Training: the AlbedoGAN LightningModule (``albedogan_module``), the estimator pre-training module, estimators,
self-distillation targets, the phase schedule, EMA, the training builder, checkpoint validation and the
inference-weights file (``weights_file``). Names are re-exported lazily (:func:`albedogan.utils.lazy.lazy_exports`)."""

from albedogan.utils.lazy import lazy_exports

_EXPORTS = {
    "AlbedoGANModule": "albedogan_module", "NonFiniteLossError": "albedogan_module", "Preview": "albedogan_module",
    "EstimatorPretrainModule": "estimator_pretrain",
    "GroundTruthEstimator": "estimator", "build_deca_mica_estimator": "estimator",
    "build_embedded_estimator": "estimator",
    "AlbedoTargetBuilder": "targets",
    "PhaseSchedule": "phases",
    "ModelEMA": "ema",
    "build_training": "builder", "instantiate_with": "builder",
    "AtomicCheckpointIO": "checkpoint", "validate_training_checkpoint": "checkpoint",
    "InferenceWeights": "weights_file", "export_inference_weights": "weights_file",
    "load_estimator_weights": "weights_file", "load_inference_weights": "weights_file",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
