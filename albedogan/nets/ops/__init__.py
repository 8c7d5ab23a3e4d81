"""StyleGAN2's low-level ops, kept apart from the networks as NVlabs keeps ``torch_utils/ops``: FIR resampling
(``upfirdn2d``), bias + activation (``bias_act``) and the modulated convolution (``modulated_conv``), all pure
PyTorch (no custom CUDA kernels)."""

from albedogan.nets.ops.bias_act import LRELU_GAIN, LRELU_SLOPE, bias_act
from albedogan.nets.ops.modulated_conv import modulated_conv2d
from albedogan.nets.ops.upfirdn2d import blur, downsample2d, setup_filter, upfirdn2d_ref, upsample2d

__all__ = ["LRELU_GAIN", "LRELU_SLOPE", "bias_act", "blur", "downsample2d", "modulated_conv2d", "setup_filter",
           "upfirdn2d_ref", "upsample2d"]
