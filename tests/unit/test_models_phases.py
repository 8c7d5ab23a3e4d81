"""PhaseSchedule: step -> phase mapping against a hand-expanded sequence, validation, removal of a phase."""

import pytest

from albedogan.models.phases import PHASES, PhaseSchedule


def _expand(warmup: int, warm_phase: str, cycle, steps: int) -> list[str]:
    seq = [warm_phase] * warmup
    while len(seq) < steps:
        for name, n in cycle:
            seq.extend([name] * n)
    return seq[:steps]


@pytest.mark.parametrize(
    "warmup,warm_phase,cycle",
    [(0, "albedo", [("albedo", 1), ("shape", 1)]), (3, "albedo", [("albedo", 2), ("shape", 1)]),
     (2, "shape", [("shape", 4), ("albedo", 3)]), (5, "albedo", [("albedo", 7)])],
)
def test_phase_at_matches_expanded_sequence(warmup, warm_phase, cycle):
    sched = PhaseSchedule(cycle, warmup_steps=warmup, warmup_phase=warm_phase)
    expected = _expand(warmup, warm_phase, cycle, 60)
    assert [sched.phase_at(s) for s in range(60)] == expected
    assert [sched.index_at(s) for s in range(60)] == [PHASES.index(p) for p in expected]


def test_yaml_lists_are_accepted_and_cycle_length():
    sched = PhaseSchedule([["albedo", "4"], ["shape", 2]], warmup_steps=1)
    assert sched.cycle == (("albedo", 4), ("shape", 2))
    assert sched.cycle_length == 6
    assert sched.phases == {"albedo", "shape"}


@pytest.mark.parametrize(
    "kwargs,match",
    [(dict(cycle=[]), "empty"), (dict(cycle=[("albedo", 0)]), "steps > 0"), (dict(cycle=[("colour", 2)]), "colour"),
     (dict(cycle=[("albedo", 1)], warmup_steps=-1), "warmup_steps"), (dict(cycle=[("albedo", 1, 2)]), "entry 0")],
)
def test_invalid_schedules_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PhaseSchedule(**kwargs)


def test_negative_step_raises():
    with pytest.raises(ValueError, match="step"):
        PhaseSchedule([("albedo", 1)]).phase_at(-1)


def test_without_removes_phase_and_moves_warmup():
    sched = PhaseSchedule([("shape", 2), ("albedo", 3)], warmup_steps=2, warmup_phase="shape").without("shape")
    assert sched.cycle == (("albedo", 3),)
    assert sched.warmup_phase == "albedo"
    assert {sched.phase_at(s) for s in range(20)} == {"albedo"}
    with pytest.raises(ValueError, match="empty"):
        PhaseSchedule([("shape", 2)]).without("shape")
