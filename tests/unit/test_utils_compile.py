"""``model.compile``: in-place ``torch.compile`` with an eager fallback (``albedogan.utils.compile``).

Compiled and eager G_A / D agree (forward and gradients), state-dict keys stay the eager ones (checkpoints load
either way), a module that fails to compile runs eagerly after exactly one warning line, and a genuine error is
raised unchanged. The default suite uses the ``aot_eager`` backend (dynamo tracing + AOTAutograd, no code
generation: seconds); the inductor (C++ code generation) twins are ``slow``.
"""

from __future__ import annotations

import logging

import pytest
import torch

from albedogan.nets.albedo_generator import AlbedoGenerator
from albedogan.nets.stylegan2 import Discriminator
from albedogan.utils.compile import compile_module, eager, is_compiled, uncompile_module


def _nets() -> tuple[AlbedoGenerator, Discriminator]:
    torch.manual_seed(0)
    g = AlbedoGenerator(w_dim=16, uv_resolution=16, channel_base=256, channel_max=16)
    d = Discriminator(img_resolution=16, channel_base=256, channel_max=16)
    return g, d


def _fwd_bwd(g: torch.nn.Module, d: torch.nn.Module, ws: torch.Tensor) -> tuple[torch.Tensor, dict]:
    g.zero_grad(set_to_none=True)
    d.zero_grad(set_to_none=True)
    logits = d(g(ws, raw=True) * 2 - 1)
    torch.nn.functional.softplus(-logits).mean().backward()
    grads = {f"G.{k}": p.grad.clone() for k, p in g.named_parameters()}
    grads.update({f"D.{k}": p.grad.clone() for k, p in d.named_parameters()})
    return logits.detach(), grads


def _assert_compiled_matches_eager(backend: str, atol: float) -> None:
    g, d = _nets()
    ws = torch.randn(4, g.num_ws, 16, generator=torch.Generator().manual_seed(1))
    ref_logits, ref_grads = _fwd_bwd(g, d, ws)
    keys = (list(g.state_dict()), list(d.state_dict()))
    compile_module(g, "G_A", backend=backend)
    compile_module(d, "D", backend=backend)
    for _ in range(2):  # the second call runs the cached graphs
        logits, grads = _fwd_bwd(g, d, ws)
        torch.testing.assert_close(logits, ref_logits, atol=atol, rtol=0)
        for k, v in ref_grads.items():
            torch.testing.assert_close(grads[k], v, atol=atol, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    assert is_compiled(g) and is_compiled(d)
    assert (list(g.state_dict()), list(d.state_dict())) == keys
    assert not any("_orig_mod" in k for k in keys[0] + keys[1])


def test_compiled_g_and_d_match_eager_aot_eager():
    """Forward logits and every parameter gradient of a G_A -> D pass agree <= 1e-5 (fp32)."""
    _assert_compiled_matches_eager("aot_eager", atol=1e-5)


@pytest.mark.slow
def test_compiled_g_and_d_match_eager_inductor():
    """The same with inductor's generated C++ kernels (fused pointwise ops may round differently: <= 1e-5)."""
    _assert_compiled_matches_eager("inductor", atol=1e-5)


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here\nsecond line that must not be logged")


def test_failed_compilation_falls_back_to_eager_with_one_warning(caplog):
    g, _ = _nets()
    ws = torch.randn(2, g.num_ws, 16)
    with torch.no_grad():
        ref = g(ws)
    compile_module(g, "G_A", backend=_failing_backend)
    with caplog.at_level(logging.WARNING), torch.no_grad():
        out1 = g(ws)
        out2 = g(ws)
    assert torch.equal(out1, ref) and torch.equal(out2, ref)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "model.compile" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    msg = warnings[0].getMessage()
    assert "G_A" in msg and "no compiler here" in msg and "second line" not in msg and "\n" not in msg
    assert not is_compiled(g)


def test_genuine_errors_are_raised_not_swallowed():
    g, _ = _nets()
    compile_module(g, "G_A", backend="aot_eager")
    with pytest.raises(ValueError, match="w_dim=16"):
        g(torch.randn(2, 3, 7))
    assert is_compiled(g)  # a caller's error is not a compiler failure


def test_eager_and_uncompile_bypass_the_compiled_call():
    g, _ = _nets()
    compile_module(g, "G_A", backend=_failing_backend)
    ws = torch.randn(2, g.num_ws, 16)
    with torch.no_grad():
        a = eager(g)(ws)
        assert is_compiled(g)  # eager() never touched the compiled call
        assert torch.equal(uncompile_module(g)(ws), a)
    assert not is_compiled(g)
