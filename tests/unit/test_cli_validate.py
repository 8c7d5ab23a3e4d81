"""albedogan.cli: the rules table matches the YAML and the functions it configures; every shipped config validates;
each kind of value check names the key, the value, what is allowed and an example."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from albedogan.cli.launch import _compose, preflight
from albedogan.cli.rules import KEYS, MODE_KEYS, Rule
from albedogan.cli.validate import (CONF_DIR, _static_params, check_value, mode_file_keys, sniff_checkpoint,
                                    validate)

MODES = sorted(p.stem for p in (CONF_DIR / "mode").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("mode", MODES)
def test_rules_match_the_mode_yaml_and_its_function(mode):
    keys = mode_file_keys(mode)
    assert set(MODE_KEYS[mode]) <= set(keys), set(MODE_KEYS[mode]) - set(keys)  # no rule for a key that is gone
    target = OmegaConf.load(CONF_DIR / "mode" / f"{mode}.yaml")._target_
    params, var_kw = _static_params(target)
    top = {k.split(".")[0] for k in keys}
    assert var_kw or top <= params, top - params  # every YAML key is an argument of the mode's function


@pytest.mark.parametrize("entry", ["infer", "train"])
def test_top_level_rules_name_existing_keys(entry):
    """Every rule names a key of the entry's composed default config (dotted keys such as ``model.micro_batch``
    inside their group's default)."""
    cfg = OmegaConf.to_container(_compose(entry, []), resolve=False)

    def present(key: str) -> bool:
        node = cfg
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = {key for key in KEYS[entry] if not present(key)}
    assert not missing, missing


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_default_validates(mode, tmp_path):
    extra = [f"input={tmp_path}"] if mode == "reconstruct" else []
    assert preflight("infer", [f"mode={mode}", *extra, f"output_dir={tmp_path}/o"]) == []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_validates(experiment, tmp_path):
    assert preflight("train", [f"experiment={experiment}", f"output_dir={tmp_path}/o"]) == []


@pytest.mark.parametrize("rule, value, ok", [
    (Rule("int", min=1), 3, True), (Rule("int", min=1), 0, False), (Rule("int"), "abc", False),
    (Rule("int"), True, False), (Rule("float", max=1.0), 0.5, True), (Rule("float", max=1.0), 2, False),
    (Rule("bool"), "yes", False), (Rule("choice", choices=("a", "b")), "c", False),
    (Rule("seeds"), [0, 3], True), (Rule("seeds"), [-1], False), (Rule("seeds"), 5, False),
    (Rule("choices", choices=("mp4", "gif")), [], False), (Rule("choices", choices=("mp4", "gif")), ["gif"], True),
    (Rule("floats", length=(3, 3)), [1, 2], False), (Rule("int", nullable=True), None, True),
    (Rule("int"), None, False), (Rule("paths"), ["a", "b"], True), (Rule("mapping"), {"0": 1}, True),
])
def test_check_value(rule, value, ok):
    problem = check_value("mode.k", value, Rule(rule.kind, example="mode.k=1", min=rule.min, max=rule.max,
                                                  choices=rule.choices, nullable=rule.nullable, length=rule.length))
    assert (problem is None) == ok
    if problem is not None:
        line = problem.line()
        assert line.startswith("error: mode.k=") and "\n" not in line
        assert "(e.g. mode.k=" in line  # an example of the same key


def test_sniff_checkpoint(tmp_path):
    good = Path(__file__).resolve().parents[2] / "checkpoints" / "albedogan_synthetic.safetensors"
    assert sniff_checkpoint(good) is None
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\xff" * 64)
    assert "not a checkpoint file" in sniff_checkpoint(bad)
    ckpt = tmp_path / "y.ckpt"
    ckpt.write_bytes(b"hello world, not a zip")
    assert "not a checkpoint file" in sniff_checkpoint(ckpt)
    ckpt.write_bytes(b"PK\x03\x04rest")
    assert sniff_checkpoint(ckpt) is None  # may be one: torch.load decides


def test_validate_without_hydra_runtime():
    """``guarded`` validates configs composed without Hydra's runtime (multirun jobs, tests) too."""
    cfg = _compose("infer", ["mode=video", "mode.seeds=[3]"])
    problems = validate(cfg, "infer", ["mode=video", "mode.seeds=[3]"], mode="video")
    assert [p.key for p in problems] == ["mode.seeds"]


def test_keys_without_a_rule_take_the_defaults_type_and_accept_null():
    """A key with no rules-table entry is checked against its default's type; null stays allowed (Optional
    constructor arguments such as the procedural teacher's active-coefficient counts default to ints in a world)."""
    base = OmegaConf.create({"teacher": {"coefficients": {"n_shape_active": 20}}})
    key = "teacher.coefficients.n_shape_active"
    assert validate(OmegaConf.create({"teacher": {"coefficients": {"n_shape_active": None}}}), "train",
                    [f"{key}=null"], base=base) == []
    problems = validate(OmegaConf.create({"teacher": {"coefficients": {"n_shape_active": "abc"}}}), "train",
                        [f"{key}=abc"], base=base)
    assert [p.key for p in problems] == [key] and "abc" in problems[0].line()
