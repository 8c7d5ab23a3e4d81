"""Measure the photo fitting on the embedded world, where the truth is known (numbers for docs/fitting.md).

Faces of the procedural teacher rendered at ``--size`` px with wide poses (yaw up to ``--yaw`` degrees, roll up to
``--roll``) and strong side light, their true 68 landmarks plus detector-like noise as the targets. Each face goes
through what ``mode=reconstruct`` does: roll-straightened landmark crop → embedded estimator → ``FaceFitter`` (the
``conf/fit/<fit>.yaml`` stages) → de-lit texture. Reported, before fitting (the estimator) and after:

* landmark error: mean 2D distance of the 68 fitted landmarks to the *true* ones / true inter-ocular distance;
* pose error: geodesic angle (degrees) between fitted and true head rotation (global · neck), in the image frame;
* neutral-shape error: mean vertex distance (mm) of the zero-pose, zero-expression meshes;
* albedo error: mean |texture − true albedo| over the face texels the photo shows, for the lit unwrapped texture
  and for the texture de-lit by the fitted shading.

With ``--real-photos`` it measures instead, on the real photos shipped inside installed packages (skimage's astronaut
upright, rolled by +-25 degrees and turned by 90 degrees; insightface's ``Tom_Hanks_54745.png`` and ``t1.jpg``), the
fitted 68 landmarks of the mesh (projected, dynamic contour) against dlib's 68 detected points, per landmark group
(jaw contour 0-16, brows 17-26, nose 27-35, eyes 36-47, outer lips 48-59, inner lips 60-67) / the detected
inter-ocular distance: where the fit misses the detector (the numbers of docs/fitting.md's real-photo section).

Usage: ``python scripts/eval_fitting.py --n 24 --out docs/fitting_eval.json``;
``python scripts/eval_fitting.py --real-photos --fit landmarks --out real.json``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from albedogan.datamodules.alignment import landmark_crop_matrices, warp_affine
from albedogan.fitting import FaceFitter
from albedogan.fitting.frames import crop_estimate_to_source
from albedogan.flame.head import HeadModel
from albedogan.flame.lbs import batch_rodrigues
from albedogan.bench.bm_reconstruct import embedded_world_estimator
from albedogan.models.targets import AlbedoTargetBuilder
from albedogan.render.cameras import ndc_to_pixels, pixels_to_ndc
from albedogan.structures import FaceEstimate
from albedogan.teachers.procedural import ProceduralTeacher


def _angle_deg(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    rel = a.transpose(1, 2) @ b
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return torch.rad2deg(torch.acos(cos))


def _head_rot(est: FaceEstimate) -> torch.Tensor:
    return batch_rodrigues(est.params.global_pose) @ batch_rodrigues(est.params.neck_pose)


def _fit_config(name: str) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(f"conf/fit/{name}.yaml"))
    if "defaults" in cfg:  # landmarks / none derive from photometric
        base = OmegaConf.to_container(OmegaConf.load("conf/fit/photometric.yaml"))
        cfg = {**base, **{k: v for k, v in cfg.items() if k != "defaults"}}
    return cfg


LANDMARK_GROUPS = {"jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "lips_outer": (48, 60),
                   "lips_inner": (60, 68)}
"""iBUG-68 landmark groups (index ranges)."""


def _real_photos() -> dict[str, np.ndarray]:
    import cv2
    import insightface
    from skimage import data

    def rolled(img: np.ndarray, degrees: float) -> np.ndarray:
        h, w = img.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT)

    folder = Path(insightface.__file__).parent / "data" / "images"
    astronaut = data.astronaut()
    read = lambda name: np.ascontiguousarray(cv2.imread(str(folder / name))[:, :, ::-1])  # noqa: E731
    return {"astronaut": astronaut, "astronaut_roll25": rolled(astronaut, 25),
            "astronaut_roll-25": rolled(astronaut, -25),
            "astronaut_rot90": np.ascontiguousarray(np.rot90(astronaut, -1)), "hanks": read("Tom_Hanks_54745.png"),
            "t1": read("t1.jpg")}


def real_photo_report(fit: str, data_dir: str, crop: int = 224) -> dict:
    """Per face of :func:`_real_photos`: NME of the fitted 68 landmarks vs dlib's (all and per group), fitted yaw."""
    from albedogan.datamodules.detection import build_face_detector
    from albedogan.datamodules.landmarks import build_landmark_detector
    from albedogan.flame.landmarks import contour_yaw_degrees
    from albedogan.inference.reconstruct import _crop_faces, find_faces

    est_net, n_shape, n_exp = embedded_world_estimator()
    head = HeadModel.synthetic(data_dir, n_shape=n_shape, n_exp=n_exp)
    fitter = FaceFitter(head, **_fit_config(fit))
    detector, landmarks = build_face_detector("yunet"), build_landmark_detector("dlib68")
    faces: dict[str, dict] = {}
    cpu = 0.0
    for name, image in _real_photos().items():
        found = find_faces(image, detector, (90, 180, 270), "all", 10, 24)
        fc = _crop_faces(found, landmarks, crop, 1.25, torch.device("cpu"))
        lmk5 = torch.as_tensor(np.stack([c.to_crop(d.landmarks5) for c, d in zip(fc.crops, found.detections)]),
                               dtype=fc.images.dtype)
        with torch.no_grad():
            start = est_net(fc.images, landmarks5=lmk5)
        c0 = time.process_time()
        result = fitter(fc.images, fc.targets, start)
        cpu += time.process_time() - c0
        pred, target = result.landmarks, fc.targets  # crop NDC: a similarity of the photo, NME unchanged
        iod = (target[:, 42:48].mean(1) - target[:, 36:42].mean(1)).norm(dim=-1)
        dist = (pred - target).norm(dim=-1) / iod[:, None]  # (F, 68)
        yaw = contour_yaw_degrees(result.estimate.params.global_pose, result.estimate.params.neck_pose)
        for k in range(dist.shape[0]):
            key = name if dist.shape[0] == 1 else f"{name}#{k}"
            faces[key] = {"nme_68": float(dist[k].mean()), "yaw_deg": float(yaw[k]),
                          **{g: float(dist[k, a:b].mean()) for g, (a, b) in LANDMARK_GROUPS.items()}}
    mean = {key: float(np.mean([f[key] for f in faces.values()])) for key in ["nme_68", *LANDMARK_GROUPS]}
    return {"fit": fit, "faces": faces, "mean": mean, "fit_cpu_seconds": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real-photos", action="store_true", help="fitted vs detected landmarks on real photos")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--yaw", type=float, default=60.0)
    ap.add_argument("--roll", type=float, default=30.0)
    ap.add_argument("--noise", type=float, default=0.02, help="landmark noise std, fraction of the IOD")
    ap.add_argument("--fit", default="photometric")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default="data")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.real_photos:
        text = json.dumps({"settings": vars(args), **real_photo_report(args.fit, args.data, args.crop)}, indent=2)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
        return

    head = HeadModel.synthetic(args.data, n_shape=50, n_exp=20)
    teacher = ProceduralTeacher(head, image_size=args.size, uv_resolution=64, z_dim=64, w_dim=64, num_ws=8,
                                calibration_samples=256, coefficients=dict(n_shape_active=20, n_exp_active=10),
                                pose=dict(yaw_max=math.radians(args.yaw), roll_max=math.radians(args.roll)),
                                light=dict(azimuth_max=1.4, intensity_range=(0.6, 0.9), ambient_range=(0.3, 0.5)),
                                seed=args.seed)
    est_net = embedded_world_estimator()[0]
    fitter = FaceFitter(head, **_fit_config(args.fit))
    builder = AlbedoTargetBuilder(head, uv_resolution=64, delight=True, delight_min_shading=0.3, region="face",
                                  fill="none", mirror=False)

    with torch.no_grad():
        sample = teacher.sample(torch.randn(args.n, teacher.z_dim))
    truth = sample.truth
    true_px = ndc_to_pixels(truth.landmarks2d, args.size)  # (N, 68, 2)
    iod = (true_px[:, 42:48].mean(1) - true_px[:, 36:42].mean(1)).norm(dim=-1)  # (N,)
    noisy = true_px + args.noise * iod[:, None, None] * torch.randn_like(true_px)
    matrices = landmark_crop_matrices(noisy, args.crop)
    crops = warp_affine(sample.image, matrices, (args.crop, args.crop))
    crop_targets = pixels_to_ndc(noisy @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2], args.crop)
    lmk5 = torch.stack([noisy[:, 36:42].mean(1), noisy[:, 42:48].mean(1), noisy[:, 30], noisy[:, 48], noisy[:, 54]], 1)
    lmk5_crop = lmk5 @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]

    t0 = time.perf_counter()
    with torch.no_grad():
        start = est_net(crops, landmarks5=lmk5_crop)
    t1 = time.perf_counter()
    fitted = fitter(crops, crop_targets, start)
    t2 = time.perf_counter()

    def scores(est_crop: FaceEstimate) -> dict[str, float]:
        with torch.no_grad():
            src = crop_estimate_to_source(est_crop, head, matrices, args.crop, args.size)
            lmk = ndc_to_pixels(fitter._project(src.params, src.cam, mesh=False)[1], args.size)
            nme = ((lmk - true_px).norm(dim=-1).mean(1) / iod)
            pose = _angle_deg(_head_rot(src), _head_rot(truth.estimate))
            neutral = head.flame.neutral(src.params).vertices
            neutral_true = head.flame.neutral(truth.estimate.params).vertices
            shape_mm = (neutral - neutral_true).norm(dim=-1).mean(1) * 1000
            lit = builder(sample.image, src, delight=False)
            delit = builder(sample.image, src, delight=True)
            region = builder.region * (lit.visibility > 0)
            gt = truth.albedo
            if gt.shape[-1] != lit.texture.shape[-1]:
                gt = torch.nn.functional.interpolate(gt, size=lit.texture.shape[-2:], mode="bilinear",
                                                     align_corners=False, antialias=True)
            err = lambda t: ((t - gt).abs().mean(1, keepdim=True) * region).sum((1, 2, 3)) / region.sum(  # noqa
                (1, 2, 3)).clamp_min(1)
        return {"landmark_nme": float(nme.mean()), "pose_deg": float(pose.mean()),
                "neutral_shape_mm": float(shape_mm.mean()), "albedo_l1_lit": float(err(lit.texture).mean()),
                "albedo_l1_delit": float(err(delit.texture).mean())}

    report = {"settings": vars(args), "estimator": scores(start), "fitted": scores(fitted.estimate),
              "seconds_per_face": {"estimator": (t1 - t0) / args.n, "fitting": (t2 - t1) / args.n},
              "fit_losses": fitted.losses}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
