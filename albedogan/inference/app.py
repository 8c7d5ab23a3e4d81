"""Interactive demo (Gradio): ``python app.py`` = ``python infer.py mode=app`` (conf/mode/app.yaml).

One :class:`~albedogan.inference.pipeline.FacePipeline`, built once by ``infer.py``'s own code
(:func:`albedogan.entry.build_pipeline_from_config`), serves every visitor. Each button runs the same mode
functions as the command line — :func:`~albedogan.inference.generate.run_generate`,
:func:`~albedogan.inference.reconstruct.run_reconstruct`, :func:`~albedogan.inference.video.run_video` — into a
folder of its own under ``<output_dir>/sessions/<session>/<n>_<kind>/``, so visitors never see each other's files.
The page shows the textured mesh in a 3D viewer (GLB), the UV albedo, the render or photo overlay and a turntable,
and offers the OBJ/MTL/PNG/GLB files for download.
"""

import itertools
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from albedogan.inference.editing import save_direction
from albedogan.inference.generate import run_generate
from albedogan.inference.pipeline import FacePipeline
from albedogan.datamodules.landmarks import build_landmark_detector
from albedogan.inference.reconstruct import build_fitter, run_reconstruct
from albedogan.inference.video import run_video
from albedogan.utils.logging import get_logger

__all__ = ["DemoApp", "FaceView", "latent_directions", "serve"]

log = get_logger(__name__)

_SESSION = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class FaceView:
    """What the page shows for one face (paths into the visitor's own folder; None when not produced).

    Attributes:
        glb: textured mesh for the 3D viewer. albedo: UV albedo PNG. picture: render (generate) or the fit's
        overlay on the photo (reconstruct). turntable: animated GIF. files: downloads (OBJ, MTL, PNG, GLB, MP4).
        message: one line for the page (what was done, or what went wrong and what to do).
    """

    glb: Optional[str]
    albedo: Optional[str]
    picture: Optional[str]
    turntable: Optional[str]
    files: list[str]
    message: str


@torch.no_grad()
def latent_directions(pipeline: FacePipeline, n_samples: int = 512, k: int = 3) -> torch.Tensor:
    """The ``k`` principal directions of w (GANSpace-style) scaled by their standard deviation: (k, w_dim) float,
    so an edit strength of 1 moves one standard deviation along the direction."""
    ws = pipeline.mapping(pipeline.latents(list(range(n_samples))))[:, 0].float().cpu()  # (N, w_dim)
    centred = ws - ws.mean(0)
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    std = s[:k] / (n_samples - 1) ** 0.5
    return vh[:k] * std[:, None]


class DemoApp:
    """Handlers of the demo page around one pipeline (thread-safe: one face is computed at a time).

    Args:
        pipeline: the built pipeline (weights loaded once).
        out: root folder; visitor folders go under ``out/sessions/``.
        turntable_frames: frames of the turntable GIF.
        turntable_resolution: its side in pixels (even).
        n_directions: latent directions offered (principal directions of w).
    """

    def __init__(self, pipeline: FacePipeline, out: str | os.PathLike, turntable_frames: int = 24,
                 turntable_resolution: int = 192, n_directions: int = 3, landmarks: Any = "dlib68",
                 fit: Any = None) -> None:
        self.pipeline = pipeline.eval()
        # built once, as the pipeline: the landmark detector and the fitter infer.py mode=reconstruct would use
        self.landmarks = build_landmark_detector(landmarks) if isinstance(landmarks, str) else landmarks
        self.fitter = build_fitter(fit, pipeline.head).to(pipeline.device)
        self.out = Path(out)
        self.turntable_frames = int(turntable_frames)
        self.turntable_resolution = int(turntable_resolution) // 2 * 2
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self.direction_files: list[Path] = []
        if pipeline.has_latent_space:
            (self.out / "directions").mkdir(parents=True, exist_ok=True)
            for i, d in enumerate(latent_directions(pipeline, k=n_directions)):
                self.direction_files.append(save_direction(self.out / "directions" / f"pc{i}.npy", d))

    def session_dir(self, session: Optional[str], kind: str) -> Path:
        """A new folder for one request of one visitor: ``out/sessions/<session>/<n>_<kind>``."""
        name = _SESSION.sub("_", session or "anonymous")[:64] or "anonymous"
        folder = self.out / "sessions" / name / f"{next(self._counter):05d}_{kind}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _turntable(self, face: Path, folder: Path) -> tuple[Optional[str], list[str]]:
        run_video(self.pipeline, folder, kinds=["turntable"], faces=[str(face)], frames=self.turntable_frames,
                  fps=12, resolution=self.turntable_resolution, path="turntable", formats=["gif", "mp4"])
        gif = folder / f"turntable_{face.name}.gif"
        mp4 = folder / f"turntable_{face.name}.mp4"
        return (str(gif) if gif.is_file() else None), ([str(mp4)] if mp4.is_file() else [])

    @staticmethod
    def _downloads(face: Path) -> list[str]:
        names = ("mesh.obj", "mesh.mtl", "mesh_albedo.png", "mesh.glb", "render.png", "overlay.png", "params.npz")
        return [str(face / n) for n in names if (face / n).is_file()]

    def generate(self, seed: float, truncation_psi: float, expression: float, direction: int, strength: float,
                 session: Optional[str] = None) -> FaceView:
        """One face from ``seed`` (slider values as the page sends them)."""
        seed = int(seed)
        if seed < 0:
            return FaceView(None, None, None, None, [], f"seed={seed}: use a seed >= 0")
        folder = self.session_dir(session, "generate")
        edit: dict[str, Any] = {}
        if strength and self.direction_files:
            edit = {"direction": str(self.direction_files[int(direction) % len(self.direction_files)]),
                    "strength": float(strength)}
        with self._lock:
            run_generate(self.pipeline, folder, seeds=[seed], truncation_psi=float(truncation_psi), edit=edit,
                         expression={0: float(expression)} if expression else None, sheet_cell=96)
            face = folder / f"seed{seed:04d}"
            gif, extra = self._turntable(face, folder)
        msg = (f"seed {seed}, truncation {truncation_psi:.2f}, expression {expression:+.1f}, direction "
               f"{int(direction)} × {strength:+.1f} → {face}")
        return FaceView(str(face / "mesh.glb"), str(face / "mesh_albedo.png"), str(face / "render.png"), gif,
                        self._downloads(face) + extra, msg)

    def reconstruct(self, photo: Optional[str], session: Optional[str] = None) -> FaceView:
        """Fit the uploaded photo; a photo that cannot be used gives a message, never an exception."""
        if not photo:
            return FaceView(None, None, None, None, [], "Upload a photo of a face first.")
        folder = self.session_dir(session, "reconstruct")
        try:
            with self._lock:
                run_reconstruct(self.pipeline, input=str(photo), out=folder, recursive=False,
                                landmarks=self.landmarks, fit=self.fitter)
                summary = json.loads((folder / "summary.json").read_text())
                outcome = summary["inputs"][0] if summary["inputs"] else None
                if outcome is None or outcome["status"] != "ok":
                    reason = (outcome or {}).get("reason") or "not an image"
                    detail = (outcome or {}).get("detail") or ""
                    return FaceView(None, None, None, None, [], f"This photo could not be used ({reason}: {detail})"
                                    " — upload a JPEG/PNG with one clearly visible, roughly frontal face.")
                face = Path(outcome["output"])
                gif, extra = self._turntable(face, folder)
        except Exception as err:  # noqa: BLE001 - the visitor gets a message in the page, the log the traceback
            log.warning("app: reconstruct failed for %s", photo, exc_info=True)
            return FaceView(None, None, None, None, [], f"Reconstruction failed: {err}")
        return FaceView(str(face / "mesh.glb"), str(face / "mesh_albedo.png"), str(face / "overlay.png"), gif,
                        self._downloads(face) + extra, f"{outcome['detail']} → {face}")


def build_ui(app: DemoApp, title: str = "albedogan — 3D faces"):
    """The Gradio page (Blocks) around ``app``."""
    import gradio as gr

    def outputs(view: FaceView) -> tuple:
        return view.glb, _preview(view.albedo), view.picture, view.turntable, view.files or None, view.message

    def on_generate(seed, psi, expression, direction, strength, request: gr.Request):
        return outputs(app.generate(seed, psi, expression, direction, strength, _session(request)))

    def on_reconstruct(photo, request: gr.Request):
        return outputs(app.reconstruct(photo, _session(request)))

    with gr.Blocks(title=title, analytics_enabled=False) as demo:
        gr.Markdown(f"## {title}\nGenerate a textured FLAME face from a seed, or reconstruct one from a photo. "
                    "Drag to turn the face in the 3D viewer; every file can be downloaded below.")
        with gr.Row():
            with gr.Column(scale=1):
                with gr.Tab("Generate"):
                    seed = gr.Number(value=0, precision=0, label="seed", elem_id="seed")
                    psi = gr.Slider(0.0, 1.0, value=0.7, step=0.05, label="truncation ψ")
                    expression = gr.Slider(-3.0, 3.0, value=0.0, step=0.25, label="expression (component 0)")
                    direction = gr.Dropdown([(f"principal direction {i}", i) for i in
                                             range(max(1, len(app.direction_files)))], value=0,
                                            label="latent direction")
                    strength = gr.Slider(-3.0, 3.0, value=0.0, step=0.25, label="direction strength (std)")
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                with gr.Tab("Reconstruct a photo"):
                    photo = gr.Image(type="filepath", sources=["upload"], label="face photo", elem_id="photo")
                    reconstruct_btn = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-btn")
                message = gr.Markdown(elem_id="message")
            with gr.Column(scale=2):
                viewer = gr.Model3D(label="3D face (GLB)", clear_color=(1.0, 1.0, 1.0, 1.0), height=420,
                                    elem_id="viewer")
                with gr.Row():
                    albedo = gr.Image(label="UV albedo", type="filepath", elem_id="albedo")
                    picture = gr.Image(label="render / overlay", type="filepath", elem_id="picture")
                    turntable = gr.Image(label="turntable", type="filepath", elem_id="turntable")
                files = gr.File(label="downloads (OBJ, MTL, PNG, GLB, MP4)", file_count="multiple", elem_id="files")
        outs = [viewer, albedo, picture, turntable, files, message]
        generate_btn.click(on_generate, [seed, psi, expression, direction, strength], outs)
        reconstruct_btn.click(on_reconstruct, [photo], outs)
    return demo


def _preview(png: Optional[str], side: int = 256):
    """A small albedo (the embedded checkpoint's is 32²) enlarged with nearest-neighbour texels for the page."""
    if png is None:
        return None
    from PIL import Image

    with Image.open(png) as im:
        im = im.convert("RGB")
        if max(im.size) >= side:
            return png
        return np.asarray(im.resize((side, side), Image.NEAREST))


def _session(request: Any) -> Optional[str]:
    return getattr(request, "session_hash", None) if request is not None else None


def serve(pipeline: FacePipeline, out: str | os.PathLike, host: str = "127.0.0.1", port: int = 7860,
          share: bool = False, turntable_frames: int = 24, turntable_resolution: int = 192, n_directions: int = 3,
          landmarks: Any = "dlib68", fit: Any = None, seed: int = 0, device: torch.device | str | None = None,
          block: bool = True):
    """Start the demo on ``http://host:port`` (models are already loaded; blocks until interrupted).

    ``landmarks`` / ``fit`` are the reconstruct settings (the ``landmarks`` and ``fit`` groups, as for
    ``infer.py mode=reconstruct``).

    Returns:
        The Gradio Blocks (after it stops, or at once with ``block=False``).
    """
    if device is not None:
        pipeline = pipeline.to(device)
    out = Path(out)
    app = DemoApp(pipeline, out, turntable_frames, turntable_resolution, n_directions, landmarks, fit)
    demo = build_ui(app)
    log.info("app: serving on http://%s:%d (outputs under %s)", host, int(port), out / "sessions")
    demo.queue(default_concurrency_limit=2).launch(server_name=host, server_port=int(port), share=bool(share),
                                                    allowed_paths=[str(out.resolve())], prevent_thread_lock=not block,
                                                    quiet=False)
    return demo
