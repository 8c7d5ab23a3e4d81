"""The phase schedule of AlbedoGAN training, as data.

Training alternates two phases inside one loop (DESIGN "Alternating descent"):

* ``"albedo"`` (phase A): the albedo generator G_A and the UV discriminator D are trained on self-distillation
  targets; the shape estimator is fixed.
* ``"shape"`` (phase B): G_A is frozen; the estimator's trainable parts are refined.

A schedule is ``warmup_steps`` of ``warmup_phase`` followed by a repeating cycle such as
``[("albedo", 400), ("shape", 100)]``. Steps are training batches (``trainer.global_step``; see
:class:`~albedogan.models.albedogan_module.AlbedoGANModule`), so a resumed run lands in the same phase.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["PHASES", "PhaseSchedule"]

#: Known phase names, in the order used for the numeric ``train/phase`` metric (0 = albedo, 1 = shape).
PHASES: tuple[str, ...] = ("albedo", "shape")


def _check_phase(name: str, where: str) -> str:
    if name not in PHASES:
        raise ValueError(f"PhaseSchedule: unknown phase {name!r} in {where}; expected one of {list(PHASES)}")
    return name


@dataclass(frozen=True)
class PhaseSchedule:
    """Maps a training step to the phase that runs at it.

    Args:
        cycle: ``(phase, steps)`` pairs repeated forever after the warm-up, e.g. ``[("albedo", 4), ("shape", 2)]``
            (lists from YAML are accepted). Every ``steps`` must be > 0.
        warmup_steps: steps run before the first cycle (>= 0).
        warmup_phase: the phase run during the warm-up (``"albedo"`` by default: G_A needs targets first).

    Example:
        ``PhaseSchedule([("albedo", 2), ("shape", 1)], warmup_steps=3).phase_at(step)`` for steps 0..8 gives
        albedo ×3 (warm-up), albedo, albedo, shape, albedo, albedo, shape.
    """

    cycle: tuple[tuple[str, int], ...]
    warmup_steps: int = 0
    warmup_phase: str = "albedo"

    def __init__(
        self, cycle: Iterable[Sequence], warmup_steps: int = 0, warmup_phase: str = "albedo"
    ) -> None:
        entries: list[tuple[str, int]] = []
        for i, entry in enumerate(cycle):
            if len(entry) != 2:
                raise ValueError(f"PhaseSchedule: cycle entry {i} must be (phase, steps), got {entry!r}")
            name, steps = _check_phase(str(entry[0]), f"cycle entry {i}"), int(entry[1])
            if steps <= 0:
                raise ValueError(f"PhaseSchedule: cycle entry {i} ({name!r}) needs steps > 0, got {steps}")
            entries.append((name, steps))
        if not entries:
            raise ValueError("PhaseSchedule: the cycle is empty; give at least one (phase, steps) pair")
        if int(warmup_steps) < 0:
            raise ValueError(f"PhaseSchedule: warmup_steps must be >= 0, got {warmup_steps}")
        object.__setattr__(self, "cycle", tuple(entries))
        object.__setattr__(self, "warmup_steps", int(warmup_steps))
        object.__setattr__(self, "warmup_phase", _check_phase(str(warmup_phase), "warmup_phase"))

    @property
    def cycle_length(self) -> int:
        """Steps in one cycle."""
        return sum(steps for _, steps in self.cycle)

    @property
    def phases(self) -> frozenset[str]:
        """Every phase that can run (warm-up included when it has steps)."""
        names = {name for name, _ in self.cycle}
        if self.warmup_steps:
            names.add(self.warmup_phase)
        return frozenset(names)

    def phase_at(self, step: int) -> str:
        """Phase name at training step ``step`` (0-based, >= 0)."""
        if step < 0:
            raise ValueError(f"PhaseSchedule.phase_at: step must be >= 0, got {step}")
        if step < self.warmup_steps:
            return self.warmup_phase
        offset = (step - self.warmup_steps) % self.cycle_length
        for name, steps in self.cycle:
            if offset < steps:
                return name
            offset -= steps
        raise AssertionError("unreachable")  # pragma: no cover

    def step_in_phase(self, step: int) -> int:
        """How many earlier steps ran the same phase as ``step`` (0 at a phase's first step ever).

        Lazy regularisation counts in these units: "R1 every 16 steps" means every 16th *albedo* step, whatever
        the shape steps interleaved between them. Closed form (no loop over steps).

        Example:
            ``PhaseSchedule([("albedo", 2), ("shape", 2)], warmup_steps=2)``: steps 0..7 are albedo ×4, shape ×2,
            albedo ×2 with ``step_in_phase`` 0, 1, 2, 3, 0, 1, 4, 5.
        """
        phase = self.phase_at(step)
        done = min(step, self.warmup_steps) if self.warmup_phase == phase else 0
        if step <= self.warmup_steps:
            return done
        cycles, offset = divmod(step - self.warmup_steps, self.cycle_length)
        per_cycle = sum(steps for name, steps in self.cycle if name == phase)
        start = 0
        partial = 0
        for name, steps in self.cycle:
            if name == phase:
                partial += min(max(offset - start, 0), steps)
            start += steps
        return done + cycles * per_cycle + partial

    def index_at(self, step: int) -> int:
        """Numeric phase at ``step`` (position in :data:`PHASES`), for the ``train/phase`` metric."""
        return PHASES.index(self.phase_at(step))

    def without(self, phase: str) -> PhaseSchedule:
        """The same schedule with every ``phase`` entry removed (e.g. no shape phase when nothing can train).

        Raises:
            ValueError: if nothing would remain.
        """
        _check_phase(phase, "without()")
        rest = [(n, s) for n, s in self.cycle if n != phase]
        if not rest:
            raise ValueError(f"PhaseSchedule: removing {phase!r} leaves an empty cycle {list(self.cycle)}")
        warm = self.warmup_phase if self.warmup_phase != phase else rest[0][0]
        return PhaseSchedule(rest, self.warmup_steps, warm)
