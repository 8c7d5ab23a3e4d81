"""Check a composed config before anything is built: one :class:`Problem` (one line) per mistake.

Two stages:

- :func:`validate` — torch-free, milliseconds: types, ranges and choices of the keys in :mod:`albedogan.cli.rules`,
  keys the user added with ``+`` that nothing reads, overrides whose value does not have the default's type,
  required keys per mode (``input`` for reconstruct, >= 2 seeds for an interpolation, an existing checkpoint file
  that is a checkpoint), a writable output folder.
- :func:`validate_targets` — imports the ``_target_`` classes (no construction): a key added under an instantiated
  node (``+teacher.foo=1``) must be one of its constructor's arguments.

Problems with ``status`` 2 are configuration mistakes; status 1 marks a file the user must fix (a checkpoint that
is not a checkpoint, a folder that cannot be written).
"""

from __future__ import annotations

import difflib
import glob
import inspect
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from albedogan.cli.rules import ENTRY_GROUPS, KEYS, MODE_KEYS, PIPELINE_MODES, Rule, describe, rule_for

__all__ = ["Problem", "check_output_dir", "check_value", "entry_groups", "mode_file_keys", "sniff_checkpoint", "validate",
           "validate_targets"]

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Problem:
    """One mistake: ``key`` and a complete sentence; ``status`` 2 (configuration) or 1 (a file to fix)."""

    key: str
    message: str
    status: int = 2

    def line(self) -> str:
        return f"error: {self.message}"


def _bad(key: str, value: Any, rule: Rule, why: str = "") -> Problem:
    return Problem(key, f"{key}={describe(value)}: {why or 'must be ' + rule.allowed()} (e.g. {rule.example})")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _in_range(v: float, rule: Rule) -> bool:
    return (rule.min is None or v >= rule.min) and (rule.max is None or v <= rule.max)


def check_value(key: str, value: Any, rule: Rule) -> Optional[Problem]:
    """The problem with ``value`` under ``rule`` (None when allowed)."""
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if value is None:
        return None if rule.nullable or rule.kind == "any" else _bad(key, value, rule, f"must be set: "
                                                                                      f"{rule.allowed()}")
    kind = rule.kind
    ok = True
    if kind == "int":
        ok = _is_int(value) and _in_range(value, rule)
    elif kind == "float":
        ok = _is_num(value) and _in_range(value, rule)
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "str":
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    elif kind == "choice":
        ok = value in rule.choices
    elif kind in ("seeds", "ints", "floats", "choices"):
        item_ok = {"seeds": lambda v: _is_int(v) and v >= 0, "ints": lambda v: _is_int(v) and _in_range(v, rule),
                   "floats": lambda v: _is_num(v) and _in_range(v, rule),
                   "choices": lambda v: v in rule.choices}[kind]
        ok = isinstance(value, list) and all(item_ok(v) for v in value)
        lo, hi = rule.length
        lo = 1 if kind == "choices" and lo is None else lo
        if ok and (lo is not None and len(value) < lo or hi is not None and len(value) > hi):
            ok = False
        if not ok and kind == "seeds" and _is_int(value):
            return Problem(key, f"{key}={value}: must be a list of seeds in brackets (e.g. {key}=[{value}]; "
                                f"mode.n={value} gives {value} faces from seed=)")
    elif kind == "paths":
        ok = isinstance(value, (str, list)) and (not isinstance(value, list) or all(isinstance(v, str)
                                                                                     for v in value))
    elif kind == "mapping":
        ok = isinstance(value, dict)
    return None if ok else _bad(key, value, rule)


def _select(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """(found, value) of a dotted key; interpolations that cannot be resolved yet count as not found."""
    try:
        node = OmegaConf.select(cfg, key, throw_on_missing=False, throw_on_resolution_failure=True)
    except Exception:  # noqa: BLE001 - e.g. ${hydra:runtime.output_dir} before Hydra has set it
        return False, None
    if node is None:
        parent, _, leaf = key.rpartition(".")
        holder = OmegaConf.select(cfg, parent) if parent else cfg
        return (isinstance(holder, DictConfig) and leaf in holder), None
    return True, node


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, (dict, DictConfig)):
        return []
    keys = []
    for k, v in node.items():
        name = f"{prefix}{k}"
        if isinstance(v, (dict, DictConfig)) and v and not str(k).startswith("_"):
            keys += _flat_keys(v, name + ".")
        else:
            keys.append(name)
    return keys


def mode_file_keys(mode: str) -> list[str]:
    """Dotted keys of ``conf/mode/<mode>.yaml`` (what ``mode.<key>`` may name)."""
    path = CONF_DIR / "mode" / f"{mode}.yaml"
    if not path.is_file():
        return []
    return [k for k in _flat_keys(OmegaConf.to_container(OmegaConf.load(path), resolve=False))
            if not k.startswith("_") and k != "out"]


def _is_group(key: str) -> bool:
    return (CONF_DIR / key.replace(".", "/")).is_dir() or key.startswith("hydra/")


def _parse(overrides: Sequence[str]):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides(list(overrides))


def _unknown(key: str, family: str, keys: Iterable[str], example_value: Any) -> Problem:
    keys = sorted(set(keys))
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1] for k in keys], n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    example = f" (e.g. {prefix}{close[0]}={describe(example_value)})" if close else ""
    return Problem(key, f"+{key}={describe(example_value)}: {family} has no key '{leaf}'{hint}; its keys: "
                        f"{', '.join(keys)}{example}")


def _type_of_default(default: Any) -> Optional[Rule]:
    """A rule from a default value's type (for keys without an entry in the rules table). ``null`` is accepted:
    a preset may set a key whose own default is null (``teacher.n_shape_active``); the constructor decides."""
    if isinstance(default, bool):
        return Rule("bool", example="true", nullable=True)
    if _is_int(default):
        return Rule("int", example=str(default), nullable=True)
    if isinstance(default, float):
        return Rule("float", example=str(default), nullable=True)
    if isinstance(default, (list, ListConfig)):
        return Rule("any", example=describe(OmegaConf.to_container(default) if isinstance(default, ListConfig)
                                            else default))
    return None


def validate(cfg: DictConfig, entry: str, overrides: Sequence[str] = (), base: Optional[DictConfig] = None,
             mode: Optional[str] = None) -> list[Problem]:
    """Every problem of the composed ``cfg`` of ``entry`` (``infer`` | ``train``); empty when it may run.

    Args:
        cfg: the composed config (Hydra's ``hydra`` node may be absent).
        entry: which entry point's rules apply.
        overrides: the user's command-line overrides (to find ``+`` keys and typed values).
        base: the same config composed with only the group choices of ``overrides`` (its values are the
            defaults the user's values are compared with); None skips the default-type check of keys without a
            rule.
        mode: the chosen inference mode (default: ``hydra.runtime.choices.mode`` or ``cfg.mode`` target's file).
    """
    problems: dict[str, Problem] = {}

    def add(p: Optional[Problem]) -> None:
        if p is not None and p.key not in problems:
            problems[p.key] = p

    if entry == "infer" and mode is None:
        mode = _mode_choice(cfg)
    # 1. user overrides: + keys nothing reads, values whose type differs from the default's
    for o in _parse([x for x in overrides if not x.startswith("hydra.")]):
        key = o.key_or_group
        if o.is_delete() or _is_group(key) or key.startswith("hydra"):
            continue
        value = o.value()
        if o.is_add() or o.is_force_add():
            if o.is_force_add() and _select(base if base is not None else cfg, key)[0]:
                pass  # ++ on an existing key is a plain change
            elif key.startswith("mode.") and entry == "infer" and mode is not None:
                known = mode_file_keys(mode)
                if key[len("mode."):] not in known:
                    add(_unknown(key, f"mode={mode}", known, value))
                    continue
            elif "." not in key:
                known = [str(k) for k in (base if base is not None else cfg).keys()
                         if k not in ENTRY_GROUPS[entry] and k != "hydra"]
                add(_unknown(key, f"{entry}.py", known, value))
                continue
            # + under an instantiated node: checked against its constructor by validate_targets
        rule = rule_for(entry, mode, key)
        if rule is None and base is not None:
            found, default = _select(base, key)
            rule = _type_of_default(default) if found else None
            if rule is not None:
                rule = Rule(rule.kind, example=f"{key}={rule.example}", nullable=rule.nullable)
        if rule is not None:
            add(check_value(key, value, rule))
    # 2. every key with a rule, as composed
    keyed = [(k, r) for k, r in KEYS.get(entry, {}).items()]
    if entry == "infer" and mode is not None:
        keyed += [(f"mode.{k}", r) for k, r in MODE_KEYS.get(mode, {}).items()]
    for key, rule in keyed:
        found, value = _select(cfg, key)
        if found:
            add(check_value(key, value, rule))
    # 3. what the keys mean together
    for p in (_infer_checks(cfg, mode) if entry == "infer" else _train_checks(cfg)):
        add(p)
    return sorted(problems.values(), key=lambda p: (p.status != 2, p.key))


def _mode_choice(cfg: DictConfig) -> Optional[str]:
    found, choice = _select(cfg, "hydra.runtime.choices.mode")
    if found and choice:
        return str(choice)
    target = str(OmegaConf.select(cfg, "mode._target_", default="") or "")
    for path in sorted((CONF_DIR / "mode").glob("*.yaml")):
        if target and f"_target_: {target}\n" in path.read_text():
            return path.stem
    return None


def _infer_checks(cfg: DictConfig, mode: Optional[str]) -> list[Problem]:
    out: list[Problem] = []
    _, device = _select(cfg, "device")
    if isinstance(device, str) and not _DEVICE.match(device):
        out.append(Problem("device", f"device={device}: must be auto, cpu, cuda, cuda:N or mps (e.g. device=cpu)"))
    if mode in PIPELINE_MODES:
        out += _checkpoint_checks(cfg)
    if mode == "reconstruct":
        _, value = _select(cfg, "mode.input")
        if value is None:
            out.append(Problem("input", "input is not set: mode=reconstruct needs photos — input=<file|folder|glob> "
                                        "(e.g. input=photos/ or input='photos/*.jpg')"))
        else:
            out += _paths_exist("input", value, "a photo, a folder or a glob, e.g. input=photos/")
    if mode == "video":
        _, kinds = _select(cfg, "mode.kinds")
        _, seeds = _select(cfg, "mode.seeds")
        kinds = list(kinds or []) if isinstance(kinds, (list, ListConfig)) else []
        if "interpolation" in kinds and isinstance(seeds, (list, ListConfig)) and len(seeds) < 2:
            out.append(Problem("mode.seeds", f"mode.seeds={describe(list(seeds))}: an interpolation needs at least "
                                             f"two seeds (e.g. mode.seeds=[3,4], or mode.kinds=[turntable] for one "
                                             f"face)"))
        _, resolution = _select(cfg, "mode.resolution")
        if _is_int(resolution) and resolution % 2:
            out.append(Problem("mode.resolution", f"mode.resolution={resolution}: must be even (MP4 needs even "
                                                  f"sides) (e.g. mode.resolution={resolution + 1})"))
        _, faces = _select(cfg, "mode.faces")
        if faces:
            out += _paths_exist("mode.faces", faces, "output folders of mode=generate, e.g. "
                                                     "mode.faces=[outputs/generate/seed0003]", globs=False)
    if mode == "generate":
        _, direction = _select(cfg, "mode.edit.direction")
        _, strength = _select(cfg, "mode.edit.strength")
        if direction and strength and not Path(str(direction)).is_file():
            out.append(Problem("mode.edit.direction", f"mode.edit.direction={direction}: file not found (a .npy "
                                                      f"direction, e.g. mode.edit.direction=smile.npy)"))
    return out


def _checkpoint_checks(cfg: DictConfig) -> list[Problem]:
    found, ckpt = _select(cfg, "checkpoint")
    if not found and "checkpoint" in cfg:
        return []  # an interpolation not resolvable yet (no Hydra runtime): the run's own loader checks the file
    _, allow = _select(cfg, "allow_no_checkpoint")
    if ckpt is None or str(ckpt) in ("", "null", "None"):
        if allow is not True:
            return [Problem("checkpoint", "checkpoint=null: inference needs weights — checkpoint=<file.safetensors|"
                                          "file.ckpt> (e.g. checkpoints/albedogan_synthetic.safetensors), or "
                                          "allow_no_checkpoint=true for the unwrapped-texture albedo")]
        return []
    path = Path(str(ckpt)).expanduser()
    if path.suffix not in (".safetensors", ".ckpt"):
        return [Problem("checkpoint", f"checkpoint={ckpt}: must be a .safetensors export or a Lightning .ckpt "
                                      f"(e.g. checkpoint=checkpoints/albedogan_synthetic.safetensors)")]
    if not path.is_file():
        return [Problem("checkpoint", f"checkpoint={ckpt}: file not found — pass a .safetensors export or a .ckpt "
                                      f"from `python train.py` (e.g. checkpoint=checkpoints/"
                                      f"albedogan_synthetic.safetensors), or checkpoint=null "
                                      f"allow_no_checkpoint=true for the unwrapped-texture albedo")]
    why = sniff_checkpoint(path)
    return [Problem("checkpoint", f"checkpoint={ckpt}: {why}", status=1)] if why else []


def sniff_checkpoint(path: Path) -> Optional[str]:
    """Why ``path`` is not a checkpoint file judging by its first bytes (None: it may be one)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
        size = path.stat().st_size
    except OSError as err:
        return f"cannot be read ({err.strerror})"
    if path.suffix == ".safetensors":
        n = int.from_bytes(head[:8], "little") if len(head) >= 9 else -1
        if not (2 <= n <= size - 8 and head[8:9] == b"{"):
            return ("not a checkpoint file: no safetensors header — it is damaged or not a weights file; use an "
                    "export written by `python train.py` (e.g. checkpoints/albedogan_synthetic.safetensors)")
        return None
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        return ("not a checkpoint file: neither a PyTorch zip archive nor a pickle — it is damaged or not a "
                "checkpoint; use a .ckpt written by `python train.py` or a .safetensors export")
    return None


def _paths_exist(key: str, value: Any, what: str, globs: bool = True) -> list[Problem]:
    values = [value] if isinstance(value, str) else list(value)
    out = []
    for v in values:
        v = str(v)
        if globs and _GLOB_CHARS & set(v):
            if not glob.glob(os.path.expanduser(v), recursive=True):
                out.append(Problem(key, f"{key}={v}: the pattern matches no file ({what})"))
        elif not Path(v).expanduser().exists():
            out.append(Problem(key, f"{key}={v}: no such file or folder ({what}; quote paths with spaces or "
                                    f"unusual characters: {key}='my photos/ä.jpg')"))
    return out[:1]


def _train_checks(cfg: DictConfig) -> list[Problem]:
    _, ckpt = _select(cfg, "ckpt_path")
    if ckpt and not Path(str(ckpt)).expanduser().is_file():
        return [Problem("ckpt_path", f"ckpt_path={ckpt}: file not found (a Lightning checkpoint to resume, e.g. "
                                     f"ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt)")]
    return []


def check_output_dir(path: str | os.PathLike, key: str = "output_dir", create: bool = False) -> Optional[Problem]:
    """Status-1 problem when ``path`` cannot be created or written (checked on its nearest existing ancestor; with
    ``create`` the folder is made and a probe file written and removed, as the run is about to start)."""
    p = Path(path).expanduser().absolute()
    probe = p
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        return Problem(key, f"{key}={path}: {probe} is a file, not a folder — choose another output folder "
                            f"(e.g. {key}=/tmp/albedogan_out)", status=1)
    if not os.access(probe, os.W_OK | os.X_OK):
        return Problem(key, f"{key}={path}: cannot write into {probe} (permission denied) — choose a folder you "
                            f"can write (e.g. {key}=/tmp/albedogan_out)", status=1)
    if create:
        import tempfile

        try:
            p.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=p):
                pass
        except OSError as err:
            return Problem(key, f"{key}={path}: cannot create or write it ({err.strerror}) — choose a folder you "
                                f"can write (e.g. {key}=/tmp/albedogan_out)", status=1)
    return None


def _static_params(target: str) -> Optional[tuple[set[str], bool]]:
    """(parameter names, takes **kwargs) of ``target``'s constructor/function read from its source with ``ast``
    (nothing imported); None when the source does not define it plainly (re-exports, inherited ``__init__``)."""
    import ast
    import importlib.util

    module, _, name = target.rpartition(".")
    package_root = Path(__file__).resolve().parents[2]
    origin = package_root / (module.replace(".", "/") + ".py")
    if not module.startswith("albedogan."):  # find_spec of a top-level module imports nothing
        try:
            spec = importlib.util.find_spec(module) if "." not in module else None
        except (ImportError, ValueError):
            return None
        origin = Path(spec.origin) if spec is not None and spec.origin else Path("/nonexistent")
    if not origin.is_file() or origin.suffix != ".py":
        return None
    tree = ast.parse(origin.read_text(encoding="utf-8"))
    for node in tree.body:
        if getattr(node, "name", None) != name:
            continue
        fn = node
        if isinstance(node, ast.ClassDef):
            fn = next((b for b in node.body if isinstance(b, ast.FunctionDef) and b.name == "__init__"), None)
            if fn is None:
                return None
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return None
        a = fn.args
        names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs} - {"self"}
        return names, a.kwarg is not None
    return None


def _imported_params(target: str) -> Optional[tuple[set[str], bool]]:
    import hydra

    try:
        params = inspect.signature(hydra.utils.get_object(target)).parameters
    except (ImportError, ValueError, TypeError, AttributeError):
        return None
    names = {n for n, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n != "self"}
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def validate_targets(cfg: DictConfig, overrides: Sequence[str], static: bool = False) -> list[Problem]:
    """Keys added with ``+`` under an instantiated node must be arguments of its ``_target_`` (builds nothing).

    ``static``: read the signature from the source file (torch-free; targets it cannot read are skipped),
    else import the target.
    """
    out = []
    for o in _parse([x for x in overrides if not x.startswith("hydra.")]):
        key = o.key_or_group
        if not (o.is_add() or o.is_force_add()) or "." not in key or key.startswith("mode."):
            continue
        parent_key, leaf = key.rsplit(".", 1)
        parent = OmegaConf.select(cfg, parent_key, throw_on_resolution_failure=False)
        if not isinstance(parent, DictConfig):
            out.append(Problem(key, f"+{key}={describe(o.value())}: there is no '{parent_key}' to add to "
                                    f"(check the spelling; `--help` lists the groups and keys)"))
            continue
        if "_target_" not in parent:
            continue
        target = str(parent._target_)
        found = _static_params(target) if static else _imported_params(target)
        if found is None:
            continue
        names, var_kw = found
        if var_kw or leaf in names:
            continue
        out.append(_unknown(key, f"{parent_key} ({target.rsplit('.', 1)[-1]})", names, o.value()))
    return out


def entry_groups(entry: str) -> Mapping[str, list[str]]:
    """``{group: [options]}`` of the groups ``entry`` accepts (from ``conf/``)."""
    return {g: sorted(p.stem for p in (CONF_DIR / g).glob("*.yaml")) for g in ENTRY_GROUPS[entry]}
