"""Sections of ``--help`` (``${albedogan.help:<section>,<arg>}`` in ``conf/hydra/help/<entry>.yaml``).

Descriptions come from where the defaults live: the leading comment of each ``conf/mode/*.yaml`` /
``conf/experiment/*.yaml``; key meanings and allowed values from :mod:`albedogan.cli.rules`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, ListConfig, OmegaConf

from albedogan.cli.rules import KEYS, MODE_KEYS, describe
from albedogan.cli.validate import CONF_DIR, entry_groups, mode_file_keys

__all__ = ["first_sentence", "help_section"]


def first_sentence(path: Path) -> str:
    """The first sentence of a YAML file's leading comment (``@package`` lines skipped)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith("@package"):
            continue
        lines.append(text)
    text = " ".join(lines)
    m = re.search(r"^(.+?\.)(\s|$)", text)
    text = (m.group(1) if m else text).strip()
    return text if len(text) <= 130 else text[:text.rfind(" ", 0, 128)] + " …"


def _options(group: str) -> str:
    width = max((len(p.stem) for p in (CONF_DIR / group).glob("*.yaml")), default=0)
    return "\n".join(f"  {group}={p.stem:<{width}}  {first_sentence(p)}"
                     for p in sorted((CONF_DIR / group).glob("*.yaml")))


def _groups(entry: str) -> str:
    rows = []
    for group, options in entry_groups(entry).items():
        if group == "local":
            options = ["default (your conf/local/default.yaml, gitignored)"]
        rows.append(f"  {group:<10} {', '.join(options) if options else '(none)'}")
    return "\n".join(rows)


def _value(root: Optional[DictConfig], key: str) -> str:
    if root is None:
        return "?"
    try:
        value = OmegaConf.select(root, key, throw_on_resolution_failure=True)
    except Exception:  # noqa: BLE001 - e.g. out=${paths.output_dir} before the run exists
        node = OmegaConf.select(root, key, throw_on_resolution_failure=False)
        return "(the run directory)" if "output_dir" in str(node) else "?"
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=False)
    return describe(value)


def _keys_table(prefix: str, rules: dict, keys: list[str], root: Optional[DictConfig]) -> str:
    rows = []
    for key in keys:
        rule = rules.get(key)
        name = f"{prefix}{key}"
        current = _value(root, name)
        meaning = rule.help if rule is not None else ""
        allowed = f" [{rule.allowed()}]" if rule is not None and rule.kind != "any" else ""
        rows.append(f"  {name}={current}\n      {meaning}{allowed}")
    return "\n".join(rows)


def help_section(section: str, arg: Any = None, *, _root_: Optional[DictConfig] = None) -> str:
    """Text of one help section (``$`` doubled for Hydra's ``string.Template``).

    Sections: ``modes``, ``experiments``, ``groups`` (arg: entry), ``mode_keys`` (arg: the chosen mode),
    ``keys`` (arg: entry).
    """
    if section == "modes":
        text = _options("mode")
    elif section == "experiments":
        text = _options("experiment")
    elif section == "groups":
        text = _groups(str(arg))
    elif section == "mode_keys":
        mode = str(arg)
        keys = [k for k in mode_file_keys(mode) if k != "out"]
        text = (f"== Keys of mode={mode} (mode.<key>=value; the value shown is the current one) ==\n"
                + _keys_table("mode.", MODE_KEYS.get(mode, {}), keys, _root_))
    elif section == "keys":
        entry = str(arg)
        text = _keys_table("", KEYS.get(entry, {}), [k for k in KEYS.get(entry, {}) if k != "task_name"], _root_)
    else:
        raise ValueError(f"unknown help section {section!r}")
    return text.replace("$", "$$")
