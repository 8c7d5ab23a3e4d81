"""Run a Hydra entry point the way a person expects: mistakes are one line each, never a traceback.

``python infer.py ...`` calls :func:`launch`, which

1. composes the config once with Hydra's compose API and turns composition errors (a key that does not exist, an
   unknown option of a group, a group this entry point does not have, an override that does not parse) into one
   line each;
2. runs :func:`albedogan.cli.validate.validate` on the composed config (torch is not imported yet);
3. prints the problems and exits with status 2 (1 when only a file must be fixed), or hands over to Hydra.

Inside the Hydra task, :func:`guarded` runs the mode/training; an exception becomes one message and exit status 1
(``debug=true`` or ``HYDRA_FULL_ERROR=1`` re-raise it with its traceback).
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Callable, Optional, Sequence

from omegaconf import DictConfig, OmegaConf

from albedogan.cli.rules import ENTRY_GROUPS, rule_for
from albedogan.cli.validate import (CONF_DIR, Problem, check_output_dir, entry_groups, mode_file_keys, validate,
                                    validate_targets)

__all__ = ["exit_with", "guarded", "launch", "launcher_rank", "preflight", "rank_overrides"]

#: set once :func:`launch` has validated the single run in this process (the task then skips stage 1)
_PREFLIGHT_DONE = False


def _stderr(line: str) -> None:
    sys.stderr.write(line.rstrip("\n") + "\n")
    sys.stderr.flush()


def exit_with(problems: Sequence[Problem]) -> None:
    """Print one line per problem and exit: status 2 when any is a configuration mistake, else 1."""
    for p in problems:
        _stderr(p.line())
    sys.exit(2 if any(p.status == 2 for p in problems) else 1)


def _full_errors(cfg: Optional[DictConfig] = None) -> bool:
    if os.environ.get("HYDRA_FULL_ERROR", "") not in ("", "0"):
        return True
    if cfg is None:
        return False
    return isinstance(cfg.get("debug") if isinstance(cfg, DictConfig) else None, DictConfig)  # train's debug=default


def _take_debug_flag(argv: list[str]) -> list[str]:
    """``debug=true`` (a launcher flag of both entry points) → ``HYDRA_FULL_ERROR=1``; removed from ``argv``."""
    flags = {"debug=true", "debug=True", "debug=1", "debug=false", "debug=False", "debug=0"}
    for arg in [a for a in argv if a in flags]:
        argv.remove(arg)
        if arg.split("=")[1] in ("true", "True", "1"):
            os.environ["HYDRA_FULL_ERROR"] = "1"
    return argv


# ------------------------------------------------------------------------------------------------------------------
# composition


def _composition_problem(err: Exception, entry: str, overrides: Sequence[str]) -> Problem:
    """One line for a Hydra composition / override-parsing error."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(err)
    script = f"{entry}.py"
    groups = entry_groups(entry)
    if isinstance(err, OverrideParseException):
        bad = (next((o for o in overrides if o in text), None) or next((o for o in overrides if "=" not in o), None)
               or text.splitlines()[0])
        return Problem("override", f"cannot parse the override {bad!r}: quote values with spaces, brackets, "
                                   f"commas or unusual characters, e.g. input='my photos/ä*.jpg' (with the quotes "
                                   f"inside the shell's: \"input='my photos/ä*.jpg'\")")
    m = re.search(r"Could not find '([\w/]+)/([^']+)'", text)
    if isinstance(err, MissingConfigException) and m:
        group, option = m.group(1), m.group(2)
        options = groups.get(group) or sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
        extra = " (debug=default also shows full tracebacks)" if group == "debug" else ""
        return Problem(group, f"{group}={option}: no such {group}; choose one of {', '.join(options)} "
                              f"(e.g. {group}={options[0] if options else '...'}){extra}")
    m = re.search(r"Could not override '([^']+)'", text)
    if m:
        key = m.group(1)
        value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == key), "")
        if "No match in the defaults list" in text:
            return Problem(key, f"{key}={value}: {script} has no '{key}' group; its groups: "
                                f"{', '.join(groups)} (`python {script} --help` lists their options)")
        return _missing_key(key, value, entry, overrides)
    m = re.search(r"An item is already at '([^']+)'", text)
    if m:
        key = m.group(1)
        return Problem(key, f"+{key}: '{key}' already exists — set it without the '+': {key}=...")
    first = next((ln for ln in text.splitlines() if ln.strip()), text)
    return Problem("config", f"{first} (`python {script} --help` lists the groups and keys)")


def _missing_key(key: str, value: str, entry: str, overrides: Sequence[str]) -> Problem:
    """``key=value`` names a key the composed config does not have: list the keys that exist there."""
    parent_key, _, leaf = key.rpartition(".")
    keys: list[str] = []
    family = f"{entry}.py" if not parent_key else parent_key
    if parent_key == "mode":
        mode = _choice(overrides, "mode")
        keys, family = mode_file_keys(mode or "head_grid"), f"mode={mode or 'head_grid'}"
    else:
        others = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
        try:
            cfg = _compose(entry, others)
            node = OmegaConf.select(cfg, parent_key) if parent_key else cfg
            if isinstance(node, DictConfig):
                keys = [str(k) for k in node.keys() if not str(k).startswith("_")
                        and (parent_key or k not in ENTRY_GROUPS[entry])]
        except Exception:  # noqa: BLE001 - best effort: the line below still names the key
            keys = []
    import difflib

    close = difflib.get_close_matches(leaf, keys, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    prefix = parent_key + "." if parent_key else ""
    example = f"{prefix}{close[0] if close else (keys[0] if keys else leaf)}={value}"
    listing = f"; its keys: {', '.join(sorted(keys))}" if keys else ""
    return Problem(key, f"{key}={value}: {family} has no key '{leaf}'{hint}{listing} (e.g. {example})")


def _choice(overrides: Sequence[str], group: str) -> Optional[str]:
    for o in reversed(list(overrides)):
        k, _, v = o.partition("=")
        if k.lstrip("+") == group:
            return v
    return None


def _compose(entry: str, overrides: Sequence[str], hydra_node: bool = False) -> DictConfig:
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name=entry):
        return compose(config_name=entry, overrides=list(overrides), return_hydra_config=hydra_node)


def preflight(entry: str, overrides: Sequence[str], run: bool = True) -> list[Problem]:
    """Compose ``entry`` with ``overrides`` and return its problems (composition errors; with ``run`` also the
    validation of the values and the output folder)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        cfg = _compose(entry, overrides, hydra_node=True)
    except Exception as err:  # noqa: BLE001 - every composition error becomes one line
        return [_composition_problem(err, entry, overrides)]
    if not run:
        return []
    HydraConfig.instance().set_config(cfg)  # ${hydra:runtime.cwd} and friends resolve as in the run
    base = None
    mode = OmegaConf.select(cfg, "hydra.runtime.choices.mode", default=None)
    keyed = [o.split("=", 1)[0] for o in overrides if "=" in o and not o.startswith(("+", "~", "hydra."))]
    if any(k not in ENTRY_GROUPS[entry] and rule_for(entry, mode, k) is None for k in keyed):
        # defaults of keys without a rule: the config with only the group choices
        groups_only = [o for o in overrides if o.startswith("~") or o.split("=", 1)[0].lstrip("+") in
                       ENTRY_GROUPS[entry]]
        try:
            base = _compose(entry, groups_only, hydra_node=True)
        except Exception:  # noqa: BLE001
            base = None
        HydraConfig.instance().set_config(cfg)
    problems = validate(cfg, entry, overrides, base) + validate_targets(cfg, overrides, static=True)
    if not any(p.key == "output_dir" for p in problems):
        try:
            run_dir = OmegaConf.select(cfg, "hydra.run.dir")
        except Exception:  # noqa: BLE001
            run_dir = None
        # the run is about to start when nothing else is wrong: make the folder (Hydra would) and probe it
        # (only a folder the user named: the default holds a timestamp Hydra resolves again)
        named = any(o.split("=", 1)[0].lstrip("+") in ("output_dir", "hydra.run.dir") for o in overrides)
        create = named and not any(p.status == 2 for p in problems)
        bad = check_output_dir(run_dir, create=create) if run_dir else None
        if bad is not None:
            problems.append(bad)
    return problems


def launcher_rank(env: Optional[dict] = None) -> int:
    """This process's global rank as an external launcher set it (torchrun: ``RANK``, SLURM ``srun``:
    ``SLURM_PROCID``); 0 when neither is set or readable."""
    env = os.environ if env is None else env
    for var in ("RANK", "SLURM_PROCID"):
        value = str(env.get(var, "")).strip()
        if value.isdigit():
            return int(value)
    return 0


def rank_overrides(argv: Sequence[str], entry: str, rank: int) -> list[str]:
    """Hydra overrides for a process of rank > 0 started by torchrun / srun (each rank runs ``train.py`` itself):
    no ``.hydra/`` folder (rank 0 writes it: the same files from every rank would be written concurrently) and a job
    log of its own (``<entry>_rank<k>.log``), as Lightning's own DDP launcher arranges for the processes it starts.
    Overrides the user already gave win."""
    if rank <= 0:
        return []
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv if "=" in a}
    extra = []
    if "hydra.output_subdir" not in given:
        extra.append("hydra.output_subdir=null")
    if "hydra.job_logging.handlers.file.filename" not in given:
        extra.append(f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/{entry}_rank{rank}.log")
    return extra


def launch(task_function: Callable[[], Any], entry: str) -> None:
    """Validate the command line of ``entry`` (``infer`` | ``train``), then call the ``@hydra.main`` function."""
    global _PREFLIGHT_DONE
    from hydra._internal.utils import get_args_parser

    register_resolvers()
    sys.argv[1:] = _take_debug_flag(sys.argv[1:])
    sys.argv[1:] += rank_overrides(sys.argv[1:], entry, launcher_rank())
    args = get_args_parser().parse_args(sys.argv[1:])
    overrides = list(args.overrides or [])
    skip = args.hydra_help or args.info or args.shell_completion or args.experimental_rerun
    if not skip and not args.multirun and (args.config_name in (None, entry)):
        run = not (args.help or args.cfg)
        try:
            problems = preflight(entry, overrides, run=run)
        except Exception:  # noqa: BLE001 - the pre-check must never hide Hydra's own handling; the task validates
            if _full_errors():
                raise
            problems, run = [], False
        if problems:
            exit_with(problems)
        _PREFLIGHT_DONE = run
    task_function()


def guarded(entry: str, cfg: DictConfig, body: Callable[[DictConfig], Any]) -> Any:
    """Run ``body(cfg)`` inside the Hydra task: validate (stage 2: constructor arguments), then turn any exception
    into one message and exit status 1 (re-raised with ``debug=true`` / ``HYDRA_FULL_ERROR=1``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = list(HydraConfig.get().overrides.task)
    except ValueError:  # called outside a Hydra run (tests): no command line
        overrides = []
    problems = [] if _PREFLIGHT_DONE else validate(cfg, entry, overrides)
    if problems:
        exit_with(problems)
    try:
        problems = validate_targets(cfg, overrides)
        if problems:
            exit_with(problems)
        return body(cfg)
    except KeyboardInterrupt:
        _stderr("interrupted")
        sys.exit(130)
    except Exception as err:  # noqa: BLE001 - the user sees one message; debug=true shows the traceback
        if _full_errors(cfg):
            raise
        _stderr(error_line(err))
        sys.exit(1)


def error_line(err: BaseException) -> str:
    """The message a person sees for a runtime error (first line names the error class)."""
    from hydra.errors import InstantiationException

    from albedogan.cli import runtime_errors

    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__  # the error raised by the constructor, not Hydra's wrapper
    text = str(err).strip() or type(err).__name__
    if "weights_only" in text:  # torch's advice to disable safe loading is never passed on
        source = text.split(": ", 1)[0]
        text = (f"{source}: not a checkpoint file, or a damaged one (it cannot be read as a PyTorch checkpoint); "
                f"use a .ckpt written by `python train.py` or a .safetensors export")
    if isinstance(err, runtime_errors()):
        return f"error ({type(err).__name__}): {text}"
    if isinstance(err, (OSError,)) and getattr(err, "filename", None):
        return f"error ({type(err).__name__}): {err.strerror}: {err.filename}"
    return (f"error ({type(err).__name__}): {text}\n(unexpected: rerun with debug=true for the traceback and "
            f"please report it)")


# ------------------------------------------------------------------------------------------------------------------
# resolvers


def register_resolvers() -> None:
    """``${albedogan.help:...}`` for the help templates (conf/hydra/help/)."""
    from albedogan.cli.help import help_section

    if not OmegaConf.has_resolver("albedogan.help"):
        OmegaConf.register_new_resolver("albedogan.help", help_section)


