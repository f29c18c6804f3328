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

FAULTS = (
    "slow_drift",
    "noisy_neighbour",
    "flash_crowd",
    "backend_failure",
    "heterogeneous",
    "quiet",
    "leak_then_crash",
    "capacity_cliff",
    "capacity_cliff_precursor",
    "fail_fast",
)
# The classes whose harm a forecast could see coming: a precursor in the
# telemetry ACE ingests, then a cliff or a crash.
FORESEEABLE = ("slow_drift", "leak_then_crash", "capacity_cliff_precursor")

DESCRIPTIONS = {
    "slow_drift": "one backend's capacity falls slowly (thermal throttling, a leak) to 30-45% over 8-12 min, "
    "stays there 3-5 min, then is restored",
    "noisy_neighbour": "a neighbour takes 40-55% of one backend's capacity within 30-60 s, for 4-7 min",
    "flash_crowd": "offered load climbs 50-75% over 2-4 min, holds 3-5 min, and falls back over 2-4 min",
    "backend_failure": "one backend stops answering (every request to it times out) for 3-5 min",
    "heterogeneous": "no event: the backends' capacities differ (drawn from 0.45x to 1.6x the nominal, one of them "
    "at 0.45x, then scaled to keep the pool's total: about 0.4x to 1.9x)",
    "quiet": "no fault: the pool at its base load, for false alarms",
    "leak_then_crash": "one backend leaks for 10-20 min: its service time creeps up to 1.4-1.7x and the share of "
    "its answers that are errors up to 5-10%, both in its telemetry; then the process is killed (every request in "
    "service or queued there fails, counted as lost in flight), refuses requests in 1 ms for 30-60 s, and restarts "
    "empty at full speed",
    "capacity_cliff": "for 8-12 min, a hidden resource of one backend (a KV cache, a connection table) fills with "
    "the work the backend serves and drains at a fixed rate: at the pool's base load it is full in 4-8 min, and it "
    "holds level when 30-40% of the backend's slot-time is in use; once full, service time is 3-5x until the fill "
    "falls below 85%. No telemetry field carries the fill: latency is flat until the cliff",
    "capacity_cliff_precursor": "the same cliff, but the fill shows in the backend's latency telemetry before "
    "it: service time is 1 + 0.5 x fill² times its base (up to 1.5x just before the cliff), as a server that "
    "slows while its cache fills",
    "fail_fast": "one backend answers every request with an error within 1 ms for 3-5 min: idle to anyone "
    "counting requests in flight",
}


@dataclass(frozen=True)
class Outage:
    """A backend that refuses every request, answering an error at once,
    from start_s until end_s. A crash (kills) also fails, at start_s, every
    request in service or queued there; the backend comes back empty."""

    backend: int
    start_s: float
    end_s: float
    kills: bool


@dataclass(frozen=True)
class Cliff:
    """The hidden resource of a capacity cliff (sim._Cliff runs it)."""

    backend: int
    start_s: float
    end_s: float
    gain: float  # fill per second with every slot busy, while the fault lasts
    leak: float  # fill drained per second
    release: float  # a full resource recovers below this fill
    factor: float  # service-time multiplier while full
    precursor: float  # service time is 1 + precursor x fill^2 before the cliff


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
    seed: int = 0
    # (backends, seconds + 1): probability that a request starting service
    # then is answered with an error; None for none.
    error_prob: Floats | None = None
    outages: tuple[Outage, ...] = ()
    cliff: Cliff | None = None


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
    if fault == "leak_then_crash":
        # Earlier than the others: the leak is long and the restart must be seen.
        start = float(rng.uniform(duration_s / 4, duration_s / 4 + 200.0))
        ramp = float(rng.uniform(600, 1200))
        slow = float(rng.uniform(1.4, 1.7))
        worst_errors = float(rng.uniform(0.05, 0.10))
        restart = float(rng.uniform(30, 60))
        crash = start + ramp
        creep = np.clip((seconds - start) / ramp, 0.0, 1.0) * (seconds < crash)
        speed[target] = 1.0 / (1.0 + (slow - 1.0) * creep)
        errors = np.zeros_like(speed)
        errors[target] = worst_errors * creep
        outage = Outage(target, crash, crash + restart, kills=True)
        return Scenario(fault, duration_s, speed, None, target, start, crash + restart, seed, errors, (outage,))
    if fault in ("capacity_cliff", "capacity_cliff_precursor"):
        fills_in = float(rng.uniform(240, 480))  # seconds to full at the pool's base load
        balance = float(rng.uniform(0.30, 0.40))  # slot share at which it neither fills nor drains
        gain = 1.0 / (fills_in * (0.55 - balance))
        hold = float(rng.uniform(480, 720))
        cliff = Cliff(
            backend=target,
            start_s=start,
            end_s=start + hold,
            gain=gain,
            leak=gain * balance,
            release=0.85,
            factor=float(rng.uniform(3.0, 5.0)),
            precursor=0.5 if fault == "capacity_cliff_precursor" else 0.0,
        )
        return Scenario(fault, duration_s, speed, None, target, start, start + hold, seed, cliff=cliff)
    if fault == "fail_fast":
        hold = float(rng.uniform(180, 300))
        outage = Outage(target, start, start + hold, kills=False)
        return Scenario(fault, duration_s, speed, None, target, start, start + hold, seed, outages=(outage,))
    if fault == "slow_drift":
        ramp, hold = float(rng.uniform(480, 720)), float(rng.uniform(180, 300))
        depth = float(rng.uniform(0.55, 0.70))
        speed[target] = _ramp(seconds, start, ramp, hold, 30.0, depth)
        return Scenario(fault, duration_s, speed, None, target, start, start + ramp + hold + 30.0, seed)
    if fault == "noisy_neighbour":
        ramp, hold = float(rng.uniform(30, 60)), float(rng.uniform(240, 420))
        depth = float(rng.uniform(0.40, 0.55))
        speed[target] = _ramp(seconds, start, ramp, hold, ramp, depth)
        return Scenario(fault, duration_s, speed, None, target, start, start + 2 * ramp + hold, seed)
    if fault == "flash_crowd":
        flash = synthetic.Spike(
            start_s=start,
            ramp_up_s=float(rng.uniform(120, 240)),
            hold_s=float(rng.uniform(180, 300)),
            ramp_down_s=float(rng.uniform(120, 240)),
            peak_utilisation=1.0 + float(rng.uniform(0.5, 0.75)),
        )
        return Scenario(fault, duration_s, speed, flash, None, start, flash.end_s, seed)
    if fault == "backend_failure":
        hold = float(rng.uniform(180, 300))
        speed[target, (seconds >= start) & (seconds < start + hold)] = 0.0
        return Scenario(fault, duration_s, speed, None, target, start, start + hold, seed)
    if fault == "heterogeneous":
        raw = rng.uniform(0.45, 1.6, backends)
        raw[target] = 0.45  # one backend well below its share under round robin
        speed *= (raw * backends / raw.sum())[:, None]
        return Scenario(fault, duration_s, speed, None, target, None, None, seed)
    return Scenario(fault, duration_s, speed, None, None, None, None, seed)
