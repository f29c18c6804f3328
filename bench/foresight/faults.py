"""The fault classes: what happens to the pool's capacity (each backend's
speed, second by second) and to the offered load during a run. Each class
draws its timing, size and target backend from the seed, so several seeds
give several different episodes of the same kind."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from services.common import synthetic

Floats = npt.NDArray[np.float64]

FAULTS = ("slow_drift", "noisy_neighbour", "flash_crowd", "backend_failure", "heterogeneous", "quiet")

DESCRIPTIONS = {
    "slow_drift": "one backend's capacity falls slowly (thermal throttling, a leak) to 30-45% over 8-12 min, "
    "stays there 3-5 min, then is restored",
    "noisy_neighbour": "a neighbour takes 40-55% of one backend's capacity within 30-60 s, for 4-7 min",
    "flash_crowd": "offered load climbs 50-75% over 2-4 min, holds 3-5 min, and falls back over 2-4 min",
    "backend_failure": "one backend stops answering (every request to it times out) for 3-5 min",
    "heterogeneous": "no event: the backends' capacities differ (drawn from 0.45x to 1.6x the nominal, one of them "
    "at 0.45x, then scaled to keep the pool's total: about 0.4x to 1.9x)",
    "quiet": "no fault: the pool at its base load, for false alarms",
}


@dataclass(frozen=True)
class Scenario:
    fault: str
    duration_s: float
    # (backends, seconds + 1): capacity as a fraction of nominal at each whole
    # second; 0 means the backend answers nothing.
    speed: Floats
    flash: synthetic.Spike | None  # the flash crowd, if any
    target: int | None  # the backend the fault hits, if one
    start_s: float | None  # when the fault begins, if it is an event
    end_s: float | None  # when it is over


def _ramp(seconds: Floats, start: float, ramp: float, hold: float, back: float, depth: float) -> Floats:
    """1 before start, falling linearly to 1 - depth over ramp, holding, and
    rising back to 1 over back seconds."""
    spike = synthetic.Spike(start, ramp, hold, back, 1.0 + depth)
    return np.asarray([1.0 - spike.extra(float(s), 1.0) for s in seconds])


def scenario(fault: str, backends: int, duration_s: float, seed: int) -> Scenario:
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
    rng = np.random.default_rng(seed)
    seconds = np.arange(int(duration_s) + 1, dtype=np.float64)
    speed = np.ones((backends, len(seconds)))
    target = int(rng.integers(backends))
    # Events begin after the first third, so that windows are full and there
    # is calm history before them.
    start = float(rng.uniform(duration_s / 3, duration_s / 3 + 300.0))
    if fault == "slow_drift":
        ramp, hold = float(rng.uniform(480, 720)), float(rng.uniform(180, 300))
        depth = float(rng.uniform(0.55, 0.70))
        speed[target] = _ramp(seconds, start, ramp, hold, 30.0, depth)
        return Scenario(fault, duration_s, speed, None, target, start, start + ramp + hold + 30.0)
    if fault == "noisy_neighbour":
        ramp, hold = float(rng.uniform(30, 60)), float(rng.uniform(240, 420))
        depth = float(rng.uniform(0.40, 0.55))
        speed[target] = _ramp(seconds, start, ramp, hold, ramp, depth)
        return Scenario(fault, duration_s, speed, None, target, start, start + 2 * ramp + hold)
    if fault == "flash_crowd":
        flash = synthetic.Spike(
            start_s=start,
            ramp_up_s=float(rng.uniform(120, 240)),
            hold_s=float(rng.uniform(180, 300)),
            ramp_down_s=float(rng.uniform(120, 240)),
            peak_utilisation=1.0 + float(rng.uniform(0.5, 0.75)),
        )
        return Scenario(fault, duration_s, speed, flash, None, start, flash.end_s)
    if fault == "backend_failure":
        hold = float(rng.uniform(180, 300))
        speed[target, (seconds >= start) & (seconds < start + hold)] = 0.0
        return Scenario(fault, duration_s, speed, None, target, start, start + hold)
    if fault == "heterogeneous":
        raw = rng.uniform(0.45, 1.6, backends)
        raw[target] = 0.45  # one backend well below its share under round robin
        speed *= (raw * backends / raw.sum())[:, None]
        return Scenario(fault, duration_s, speed, None, target, None, None)
    return Scenario(fault, duration_s, speed, None, None, None, None)
