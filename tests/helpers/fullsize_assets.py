"""Every official asset file of ``world=ffhq`` in its official format, with random weights, at the real sizes
(``full_size=True``: FLAME 5023 v / 9976 f, a config-f 1024² StyleGAN2, iresnet100, ResNet-50 encoders) or small.

Layout under ``root`` = ``paths.assets_dir``::

    FLAME2020/generic_model.pkl   chumpy-style Python-2 pickle (write_flame_model)
    landmark_embedding.npy        DECA's 0-d object array (write_landmark_embedding)
    head_template.obj             DECA's UV template (write_uv_template)
    uv_face_mask.png, uv_face_eye_mask.png   256² RGBA
    stylegan2-ffhq-config-f.pt    rosinality converted checkpoint: {g_ema, latent_avg}
    arcface/backbone.pth          insightface iresnet state dict
    deca_model.tar                {E_flame, E_detail, D_detail}
    mica.tar                      {arcface, flameModel: regressor.* (+ generator.* FLAME buffers MICA also saves)}

Random weights are "sane": convolutions / linears Kaiming-initialised and scaled so activations stay finite through
100 layers, BatchNorm statistics mean 0 / var 1 — a dry run measures shapes, memory and time, not faces.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from albedogan.assets.convert import stylegan2_rosinality as ros
from albedogan.assets.synthetic.writers import write_flame_model, write_landmark_embedding, write_uv_mask, write_uv_template
from albedogan.nets import stylegan2 as sg
from albedogan.nets.arcface import iresnet50, iresnet100
from albedogan.nets.deca_detail import DetailDecoder, DetailEncoder
from albedogan.nets.encoder import DecaEncoder
from albedogan.nets.mica import MappingNetwork
from tests.helpers.flame_tiny import flame_sized_head, tiny_landmark_embedding

__all__ = ["sane_random_", "stylegan2_config", "write_paper_assets"]


def sane_random_(net: nn.Module, seed: int, gain: float = 0.5) -> nn.Module:
    """Re-initialise ``net`` in place: Kaiming-normal (fan-in) x ``gain`` weights, zero biases, BatchNorm
    weight 1 / bias 0 / running mean 0 / var 1 (the structure of a trained net, finite at any depth)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * gain / fan_in ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return net


def stylegan2_config(full_size: bool, resolution: int | None = None) -> dict:
    """Generator kwargs: config-f (z = w = 512, channel base 32768, max 512) at 1024² or a tiny 32² net."""
    if full_size:
        return dict(z_dim=512, w_dim=512, img_resolution=resolution or 1024, channel_base=32768, channel_max=512)
    return dict(z_dim=16, w_dim=16, img_resolution=resolution or 32, channel_base=256, channel_max=32)


def _write_flame(root: Path, seed: int) -> None:
    model, uv = flame_sized_head(seed)
    (root / "FLAME2020").mkdir(parents=True, exist_ok=True)
    write_flame_model(root / "FLAME2020" / "generic_model.pkl", model, chumpy=True)
    write_landmark_embedding(root / "landmark_embedding.npy", tiny_landmark_embedding(model.faces.shape[0], seed + 1))
    write_uv_template(root / "head_template.obj", uv, model.v_template, model.faces)
    # masks in UV space (256², v up): the face around u = 0.5 on the front half, eyes included in the larger one
    u, v = np.meshgrid((np.arange(256) + 0.5) / 256, 1 - (np.arange(256) + 0.5) / 256, indexing="xy")
    face = ((np.abs(u - 0.5) < 0.16) & (v > 0.3) & (v < 0.72)).astype(np.float64)
    face_eye = ((np.abs(u - 0.5) < 0.19) & (v > 0.28) & (v < 0.76)).astype(np.float64)
    write_uv_mask(root / "uv_face_mask.png", face)
    write_uv_mask(root / "uv_face_eye_mask.png", face_eye)


def _write_stylegan2(root: Path, full_size: bool, seed: int) -> None:
    torch.manual_seed(seed)
    G = sg.Generator(**stylegan2_config(full_size)).eval()
    with torch.no_grad():  # latent_avg as converted checkpoints carry it: the mean w of (a few) samples
        G.mapping.w_avg.copy_(G.mapping(torch.randn(256, G.z_dim))[:, 0].mean(0))
    g_ema, avg = ros.generator_to_rosinality(G)
    torch.save({"g_ema": g_ema, "latent_avg": avg}, root / "stylegan2-ffhq-config-f.pt")


def _write_estimators(root: Path, full_size: bool, seed: int) -> None:
    arc = sane_random_(iresnet100() if full_size else iresnet50(), seed + 10)
    (root / "arcface").mkdir(parents=True, exist_ok=True)
    torch.save(arc.state_dict(), root / "arcface" / "backbone.pth")
    e_flame = sane_random_(DecaEncoder(), seed + 11)
    with torch.no_grad():  # a plausible camera: scale ~ 9 NDC per metre, small translation (DECA's cam at 206:209)
        e_flame.layers[2].bias[206:209] = torch.tensor([9.0, 0.0, 0.0])
        e_flame.layers[2].weight[206:209].mul_(0.01)
        e_flame.layers[2].bias[209:212] = 3.5  # white ambient light: SH band 0 of R, G, B (light 209:236 -> 9x3)
    deca = {"E_flame": e_flame.state_dict(), "E_detail": sane_random_(DetailEncoder(), seed + 12).state_dict(),
            "D_detail": sane_random_(DetailDecoder(), seed + 13).state_dict()}
    torch.save(deca, root / "deca_model.tar")
    mica_arc = sane_random_(iresnet100() if full_size else iresnet50(), seed + 14)
    mapping = sane_random_(MappingNetwork(), seed + 15)
    flame_model = {f"regressor.{k}": v for k, v in mapping.state_dict().items()}
    flame_model["generator.faces_tensor"] = torch.zeros(9976, 3, dtype=torch.long)  # MICA saves FLAME buffers too
    torch.save({"arcface": mica_arc.state_dict(), "flameModel": flame_model}, root / "mica.tar")


def write_paper_assets(root: str | Path, full_size: bool = True, seed: int = 0) -> Path:
    """Write every ``world=ffhq`` asset under ``root`` (see the module docstring); returns ``root``.

    Full size takes ~1 GB of disk (two iresnet100, three ResNet-50-sized nets, a 1024² generator) and ~1 min.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _write_flame(root, seed)
    _write_stylegan2(root, full_size, seed)
    _write_estimators(root, full_size, seed)
    return root
