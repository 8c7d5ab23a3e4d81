"""What each command-line key may hold: types, ranges, choices, a meaning and an example per key.

Defaults stay in the YAML (``conf/``); this table only says what is *allowed*. It is read by
:mod:`albedogan.cli.validate` (problems → one line each, exit status 2) and by :mod:`albedogan.cli.help`
(``python infer.py mode=reconstruct --help`` lists the mode's keys with their meaning). Torch-free on purpose:
validation runs before any model code is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["ENTRY_GROUPS", "KEYS", "MODE_KEYS", "PIPELINE_MODES", "Rule", "describe", "rule_for"]


@dataclass(frozen=True)
class Rule:
    """Allowed values of one key.

    Attributes:
        kind: ``int`` | ``float`` | ``bool`` | ``str`` | ``choice`` | ``seeds`` (list of ints >= 0) |
            ``ints`` (list of ints) | ``floats`` (list of numbers) | ``choices`` (non-empty list of choices) |
            ``paths`` (one path or a list of paths) | ``mapping`` | ``any``.
        help: one sentence: what the key does.
        example: a working ``key=value`` override.
        min, max: inclusive bounds of numbers (and of ``seeds`` / ``ints`` items).
        choices: the allowed strings of ``choice`` / ``choices``.
        nullable: ``null`` is allowed.
        length: ``(min, max)`` number of items of list kinds.
    """

    kind: str
    help: str = ""
    example: str = ""
    min: Optional[float] = None
    max: Optional[float] = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    length: tuple[Optional[int], Optional[int]] = (None, None)

    def allowed(self) -> str:
        """What is allowed, in words (the middle of an error line)."""
        bound = _bounds(self.min, self.max)
        words = {
            "int": "an integer" + bound,
            "float": "a number" + bound,
            "bool": "true or false",
            "str": "a string",
            "choice": "one of " + " | ".join(self.choices),
            "seeds": "a list of integer seeds >= 0 in brackets",
            "ints": "a list of integers" + bound,
            "floats": "a list of numbers" + bound,
            "choices": "a non-empty list of " + " | ".join(self.choices),
            "paths": "a path or a list of paths",
            "mapping": "a mapping {key: value}",
            "any": "any value",
        }[self.kind]
        lo, hi = self.length
        if lo is not None and hi is not None and lo == hi:
            words += f" ({lo} items)"
        elif lo is not None and lo > 1:
            words += f" (at least {lo} items)"
        return words + (", or null" if self.nullable else "")


def _bounds(lo: Optional[float], hi: Optional[float]) -> str:
    fmt = lambda v: f"{v:g}"  # noqa: E731
    if lo is not None and hi is not None:
        return f" in [{fmt(lo)}, {fmt(hi)}]"
    if lo is not None:
        return f" >= {fmt(lo)}"
    if hi is not None:
        return f" <= {fmt(hi)}"
    return ""


#: the config groups each entry point accepts (``--help`` lists these, with their options, and no other)
ENTRY_GROUPS: dict[str, tuple[str, ...]] = {
    "infer": ("mode", "world", "flame", "teacher", "estimator", "landmarks", "fit", "paths", "local"),
    "train": ("experiment", "world", "model", "trainer", "data", "callbacks", "logger", "flame", "teacher",
              "estimator", "paths", "debug", "local"),
}

#: modes whose function takes a built ``pipeline`` (and therefore needs the checkpoint)
PIPELINE_MODES = frozenset({"generate", "reconstruct", "video", "evaluate", "app"})

_PSI = Rule("float", "truncation toward the mean w (null = the teacher's default)", "mode.truncation_psi=0.7",
            min=0.0, max=2.0, nullable=True)
_UV = Rule("int", "albedo resolution of the exported PNG/OBJ/GLB (null = as generated; larger only upsamples)",
           "mode.uv_resolution=256", min=4, max=8192, nullable=True)
_GLB = Rule("bool", "also write mesh.glb (textured glTF binary)", "mode.glb=false")
_PERCEPTUAL = Rule("choice", "LPIPS network: auto (official LPIPS when its weights are local, else ST-LPIPS)",
                   "mode.perceptual=stlpips", choices=("auto", "lpips", "stlpips"))

#: top-level keys per entry point
KEYS: dict[str, dict[str, Rule]] = {
    "infer": {
        "seed": Rule("int", "first seed of the run (mode.n faces use seeds seed..seed+n-1)", "seed=100", min=0),
        "device": Rule("str", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N", "device=cpu"),
        "output_dir": Rule("str", "the run directory: every file of the run goes here", "output_dir=/tmp/faces"),
        "input": Rule("paths", "mode=reconstruct: a photo, a folder or a glob (quote globs and unusual characters)",
                      "input=photos/", nullable=True),
        "checkpoint": Rule("str", "inference weights: an export (.safetensors) or a Lightning .ckpt from train.py",
                           "checkpoint=checkpoints/albedogan_synthetic.safetensors", nullable=True),
        "allow_no_checkpoint": Rule("bool", "accept checkpoint=null: the albedo is the unwrapped texture",
                                    "allow_no_checkpoint=true"),
        "render_size": Rule("int", "side of the renders in pixels", "render_size=256", min=16, max=4096),
        "mouth_interior": Rule("floats", "RGB of the inside of the head seen between parted lips (reconstruct uses "
                               "the photo's)", "mouth_interior=[0.25,0.08,0.08]", min=0, max=1, length=(3, 3),
                               nullable=True),
        "uv_resolution": Rule("int", "resolution of the unwrapped albedo (only without G_A)", "uv_resolution=256",
                              min=4, max=8192),
        "task_name": Rule("str", "names the default run folder logs/<task_name>/runs/<time>", "task_name=infer"),
    },
    "train": {
        "seed": Rule("int", "global seed (weights, latent stream)", "seed=1", min=0),
        "output_dir": Rule("str", "the run directory (checkpoints, logs, config.yaml)", "output_dir=/tmp/run1"),
        "ckpt_path": Rule("str", "resume exactly from a Lightning checkpoint", "ckpt_path=logs/train/runs/<run>/"
                          "checkpoints/last.ckpt", nullable=True),
        "albedo_init": Rule("choice", "G_A initialisation: copy the StyleGAN2 teacher's synthesis or start fresh",
                            "albedo_init=random", choices=("teacher", "random")),
        "tags": Rule("any", "free-form run tags (loggers)", "tags=[ffhq,bf16]"),
        "task_name": Rule("str", "names the default run folder logs/<task_name>/runs/<time>", "task_name=train"),
        "model.micro_batch": Rule("int", "samples per forward/backward pass; a step accumulates its micro-batches "
                                  "(null = the whole per-device batch)", "model.micro_batch=1", min=1,
                                  nullable=True),
        "model.compile_backend": Rule("choice", "torch.compile backend of model.compile=true",
                                      "model.compile_backend=aot_eager",
                                      choices=("inductor", "aot_eager", "eager", "cudagraphs")),
    },
}

#: mode keys (``mode.<key>``) per inference mode; keys of the mode's YAML without a rule are type-checked against
#: their default's type
MODE_KEYS: dict[str, dict[str, Rule]] = {
    "generate": {
        "n": Rule("int", "number of faces: seeds seed..seed+n-1 (ignored when seeds is set)", "mode.n=16",
                  min=1, max=100000),
        "seeds": Rule("seeds", "explicit seeds, one face each", "mode.seeds=[3,14,15]", min=0, nullable=True,
                      length=(1, None)),
        "truncation_psi": _PSI,
        "uv_resolution": _UV,
        "glb": _GLB,
        "sheet_cell": Rule("int", "contact-sheet cell size in pixels", "mode.sheet_cell=128", min=8, max=4096),
        "expression": Rule("mapping", "offsets added to the fitted expression coefficients {component: amount}",
                           "mode.expression={0:2.0}", nullable=True),
        "edit.direction": Rule("str", "latent direction .npy in w ((w_dim,) or (num_ws, w_dim))",
                               "mode.edit.direction=smile.npy", nullable=True),
        "edit.labels": Rule("any", "labelled seeds {seed: label} or a JSON file, to compute a direction",
                            "mode.edit.labels={3:1,14:1,15:0,92:0}", nullable=True),
        "edit.method": Rule("choice", "how a direction is computed from labels", "mode.edit.method=least_squares",
                            choices=("mean_difference", "least_squares")),
        "edit.save": Rule("str", "write the computed direction to this .npy", "mode.edit.save=smile.npy",
                          nullable=True),
        "edit.strength": Rule("float", "edit strength in w units (0 = no edit)", "mode.edit.strength=2"),
    },
    "reconstruct": {
        "input": Rule("paths", "photos: a file, a folder or a glob (set by the top-level input=)", "input=photos/",
                      nullable=True),
        "detector": Rule("choice", "face detector: auto (insightface SCRFD when installed, else YuNet)",
                         "mode.detector=yunet", choices=("auto", "yunet", "insightface")),
        "detector_model_root": Rule("str", "insightface model-pack folder", "mode.detector_model_root=~/.insightface",
                                    nullable=True),
        "score_threshold": Rule("float", "detector confidence threshold (null = the detector's default)",
                                "mode.score_threshold=0.6", min=0.0, max=1.0, nullable=True),
        "min_face_size": Rule("int", "skip faces whose box is smaller (pixels)", "mode.min_face_size=32", min=1),
        "max_pixels": Rule("int", "refuse photos whose header declares more pixels (decompression-bomb guard)",
                           "mode.max_pixels=200000000", min=1, nullable=True),
        "max_side": Rule("int", "downscale larger photos to this side before detection", "mode.max_side=4096",
                         min=16, nullable=True),
        "crop_size": Rule("int", "side of the aligned crop given to the estimator (pixels)", "mode.crop_size=224",
                          min=16, max=4096),
        "crop_scale": Rule("float", "crop side = crop_scale x the face box", "mode.crop_scale=1.25", min=0.5,
                           max=4.0),
        "invert.enabled": Rule("bool", "invert the photo into the StyleGAN2 latent (StyleGAN2 teacher + G_A only)",
                               "mode.invert.enabled=false"),
        "invert.steps": Rule("int", "inversion steps", "mode.invert.steps=200", min=0, max=100000),
        "invert.lr": Rule("float", "inversion learning rate", "mode.invert.lr=0.05", min=0.0),
        "invert.lpips_weight": Rule("float", "LPIPS weight of the inversion", "mode.invert.lpips_weight=1", min=0.0),
        "invert.l2_weight": Rule("float", "L2 weight of the inversion", "mode.invert.l2_weight=1", min=0.0),
        "invert.blend": Rule("bool", "mix the de-lit photo texture into G_A(w) where the photo shows it",
                             "mode.invert.blend=false"),
        "invert.optimize_noise": Rule("bool", "also optimise the StyleGAN2 noise maps (NVlabs projector)",
                                      "mode.invert.optimize_noise=false"),
        "invert.noise_weight": Rule("float", "weight of the noise-map regulariser", "mode.invert.noise_weight=1e5",
                                    min=0.0),
        "landmarks": Rule("any", "set by the landmarks group: landmarks=dlib68|yunet5|none", "landmarks=yunet5"),
        "fit": Rule("any", "set by the fit group: fit=photometric|landmarks|none (stages, lrs, weights in conf/fit)",
                    "fit=landmarks"),
        "faces": Rule("choice", "largest: one face per photo; all: every face, one folder each, by size",
                      "mode.faces=all", choices=("largest", "all")),
        "max_faces": Rule("int", "at most this many faces per photo with mode.faces=all", "mode.max_faces=20", min=1),
        "rotations": Rule("ints", "orientations also tried (degrees counter-clockwise, multiples of 90)",
                          "mode.rotations=[90,270]", min=0, max=270),
        "poor_fit_nme": Rule("float", "quality=poor_fit above this landmark error (/ inter-ocular distance)",
                             "mode.poor_fit_nme=0.1", min=0.0),
        "fail_nme": Rule("float", "a fit worse than this fails (fit_failed)", "mode.fail_nme=0.5", min=0.0),
        "profile_yaw_deg": Rule("float", "quality=profile beyond this fitted yaw (degrees)",
                                "mode.profile_yaw_deg=60", min=0.0, max=180.0),
        "delight_min_shading": Rule("float", "lower clamp of the fitted shading the texture is divided by",
                                    "mode.delight_min_shading=0.3", min=0.01, max=1.0),
        "contact_sheet_rows": Rule("int", "faces in the run's contact_sheet.png (0 = none)",
                                   "mode.contact_sheet_rows=8", min=0),
        "perceptual": _PERCEPTUAL,
        "uv_resolution": _UV,
        "glb": _GLB,
        "recursive": Rule("bool", "descend into sub-folders of a folder input", "mode.recursive=false"),
    },
    "video": {
        "kinds": Rule("choices", "which videos", "mode.kinds=[turntable,interpolation]",
                      choices=("turntable", "interpolation", "expression")),
        "seeds": Rule("seeds", "faces to generate; interpolation goes through them in order", "mode.seeds=[0,1]",
                      min=0, length=(1, None)),
        "faces": Rule("paths", "output folders of mode=generate/reconstruct to turn instead of seeds",
                      "mode.faces=[outputs/generate/seed0003]", nullable=True),
        "truncation_psi": _PSI,
        "frames": Rule("int", "frames per turntable / expression sweep / interpolation segment", "mode.frames=48",
                       min=2, max=10000),
        "fps": Rule("float", "frames per second", "mode.fps=24", min=1, max=240),
        "resolution": Rule("int", "frame side in pixels (even, for MP4)", "mode.resolution=256", min=16, max=4096),
        "path": Rule("choice", "camera path: sweep (±azimuth_max, ±elevation_max) or a full 360° turntable",
                     "mode.path=turntable", choices=("sweep", "turntable")),
        "azimuth_max": Rule("float", "sweep amplitude left/right (degrees)", "mode.azimuth_max=45", min=0, max=180),
        "elevation_max": Rule("float", "sweep amplitude up/down (degrees)", "mode.elevation_max=10", min=0, max=90),
        "light_direction": Rule("floats", "light direction (camera frame, x right, y up, z to the viewer)",
                                "mode.light_direction=[-0.4,0.5,1.0]", length=(3, 3)),
        "light_intensity": Rule("float", "directional light intensity", "mode.light_intensity=0.7", min=0),
        "light_ambient": Rule("float", "ambient light", "mode.light_ambient=0.45", min=0),
        "interpolation_space": Rule("choice", "interpolate in z (slerp) or w (lerp)", "mode.interpolation_space=w",
                                    choices=("z", "w")),
        "expression_components": Rule("ints", "expression coefficients swept", "mode.expression_components=[0,1]",
                                      min=0),
        "expression_max": Rule("float", "amplitude of the expression sweep (basis units)", "mode.expression_max=2"),
        "jaw_max": Rule("float", "jaw opening at the sweep's peak (radians)", "mode.jaw_max=0.3", min=0, max=1.0),
        "formats": Rule("choices", "video containers", "mode.formats=[mp4]", choices=("mp4", "gif")),
        "batch_size": Rule("int", "frames per forward pass", "mode.batch_size=8", min=1, max=4096),
    },
    "evaluate": {
        "n": Rule("int", "faces evaluated: seeds seed..seed+n-1", "mode.n=64", min=2, max=1000000),
        "seeds": Rule("seeds", "explicit seeds", "mode.seeds=[0,1,2,3]", min=0, nullable=True, length=(2, None)),
        "batch_size": Rule("int", "faces per forward pass", "mode.batch_size=8", min=1, max=4096),
        "novel_yaws": Rule("floats", "extra head yaws (radians) for identity-similarity renders",
                           "mode.novel_yaws=[-0.5,0.5]", min=-3.2, max=3.2),
        "feature_space": Rule("choice", "FID/KID features", "mode.feature_space=sface",
                              choices=("auto", "inception", "sface")),
        "perceptual": _PERCEPTUAL,
        "checkpoint": Rule("str", "recorded in the report (follows checkpoint=)", "checkpoint=my.safetensors",
                           nullable=True),
        "now.dataset_root": Rule("str", "NoW dataset folder; null skips NoW", "mode.now.dataset_root=/data/NoW",
                                 nullable=True),
        "now.predictions_root": Rule("str", "existing predictions in NoW's layout", "mode.now.predictions_root=p/",
                                     nullable=True),
        "now.images_dir": Rule("str", "NoW images folder (default: under dataset_root)", "mode.now.images_dir=i/",
                               nullable=True),
        "now.split": Rule("choice", "NoW split", "mode.now.split=test", choices=("val", "test")),
        "now.challenge": Rule("str", "NoW challenge subset ('' = all)", "mode.now.challenge=multiview_neutral"),
        "now.metric": Rule("bool", "scale-free (false) or metric (true) NoW evaluation", "mode.now.metric=true"),
        "now.detector": Rule("choice", "face detector for NoW photos", "mode.now.detector=yunet",
                             choices=("auto", "yunet", "insightface")),
    },
    "app": {
        "host": Rule("str", "address to serve on: 127.0.0.1 (this machine) or 0.0.0.0 (the network)",
                     "mode.host=0.0.0.0"),
        "port": Rule("int", "TCP port of the page", "mode.port=7861", min=1, max=65535),
        "share": Rule("bool", "also open a temporary public gradio.live link (needs internet)", "mode.share=true"),
        "turntable_frames": Rule("int", "frames of the turntable GIF", "mode.turntable_frames=36", min=2, max=720),
        "turntable_resolution": Rule("int", "side of the turntable in pixels", "mode.turntable_resolution=256",
                                     min=16, max=2048),
        "n_directions": Rule("int", "principal directions of w offered by the direction slider",
                             "mode.n_directions=5", min=1, max=64),
    },
    "head_grid": {
        "rows": Rule("int", "rows of the sheet", "mode.rows=4", min=1, max=64),
        "cols": Rule("int", "columns of the sheet", "mode.cols=4", min=1, max=64),
        "image_size": Rule("int", "cell size in pixels", "mode.image_size=256", min=16, max=4096),
    },
}


def rule_for(entry: str, mode: Optional[str], key: str) -> Optional[Rule]:
    """The rule of a dotted ``key`` (``mode.n``, ``seed``) for ``entry``/``mode``, or None."""
    if key.startswith("mode.") and mode is not None:
        return MODE_KEYS.get(mode, {}).get(key[len("mode."):])
    return KEYS.get(entry, {}).get(key)


def describe(value: Any) -> str:
    """A value as the user would type it on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(describe(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{describe(v)}" for k, v in value.items()) + "}"
    return str(value)
