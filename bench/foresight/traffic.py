"""Request arrivals for the simulation: when each request arrives and how
much work it is. Two kinds of source, both seeded:

- synthetic: Poisson arrivals at the rate the project's synthetic generator
  gives (services.common.synthetic.utilisation: a slow cycle, an AR(1)
  drift and spikes), with lognormal request sizes;
- real traces (Azure LLM 2023 code and conv, Mooncake FAST'25): the real
  arrival times and token counts, replayed. One trace carries 2 to 6
  requests/s, far less than a pool at its target utilisation, so several
  copies of the trace, each shifted by a seeded random offset (wrapping
  around the trace's hour), are laid over each other and thinned to the
  target rate. Bursts within a copy are real; the mixing of copies is ours.

A request's size is its service time on an idle backend at full speed, as a
multiple of the pool's mean service time. For the traces it comes from the
token counts (prefill at 5,000 tokens/s, decode at 50 tokens/s, the rough
ratio of an LLM server), scaled to a mean of 1 and clipped to [0.05, 4], so
that no request breaches the SLO on an idle backend: latency above it comes
from queueing. This scaling is a model; figures on trace traffic rest on
modelled latency."""

from __future__ import annotations

import csv
import functools
import json
import math
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from services.common import synthetic

Floats = npt.NDArray[np.float64]

# ../shared/data from the project root; ACE_SHARED_DATA points elsewhere.
DATA_DIR = Path(os.environ.get("ACE_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
TRACES = ("azure_code", "azure_conv", "mooncake")
SOURCES = ("synthetic", *TRACES)

PREFILL_TOKENS_PER_S = 5_000.0
DECODE_TOKENS_PER_S = 50.0
SIZE_MIN, SIZE_MAX = 0.05, 4.0
SYNTHETIC_SIZE_SIGMA = 0.6
MOONCAKE_BUCKET_S = 3.0
# The rate is set per step of this length (the telemetry interval).
RATE_STEP_S = 10.0


@dataclass(frozen=True)
class Arrivals:
    times: Floats  # seconds from the start of the run, sorted
    sizes: Floats  # service time as a multiple of the mean, mean about 1

    def __len__(self) -> int:
        return len(self.times)


@dataclass(frozen=True)
class Trace:
    """One real trace: offsets from its first request and work in seconds."""

    name: str
    times: Floats
    work_s: Floats
    span_s: float

    @property
    def rate(self) -> float:
        return len(self.times) / self.span_s


def _normalised_sizes(work: Floats) -> Floats:
    sizes = np.clip(work / work.mean(), SIZE_MIN, SIZE_MAX)
    return np.asarray(sizes / sizes.mean(), dtype=np.float64)


def _spread_buckets(times: Floats, bucket_s: float) -> Floats:
    """Requests sharing a timestamp, spread evenly over the bucket that
    follows it, in their original order."""
    out = times.copy()
    _, first, counts = np.unique(times, return_index=True, return_counts=True)
    for start, count in zip(first.tolist(), counts.tolist(), strict=True):
        out[start : start + count] += np.arange(count) * (bucket_s / count)
    return out


def _azure(path: Path) -> tuple[Floats, Floats, Floats]:
    times, ctx, gen = [], [], []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            # Seven decimal places: more than fromisoformat takes.
            times.append(datetime.fromisoformat(row["TIMESTAMP"][:26]).timestamp())
            ctx.append(float(row["ContextTokens"]))
            gen.append(float(row["GeneratedTokens"]))
    return np.asarray(times), np.asarray(ctx), np.asarray(gen)


def _mooncake(path: Path) -> tuple[Floats, Floats, Floats]:
    times, ctx, gen = [], [], []
    with path.open() as f:
        for line in f:
            row = json.loads(line)
            times.append(row["timestamp"] / 1000.0)
            ctx.append(float(row["input_length"]))
            gen.append(float(row["output_length"]))
    return np.asarray(times), np.asarray(ctx), np.asarray(gen)


@functools.cache
def load_trace(name: str, data_dir: Path = DATA_DIR) -> Trace:
    if name == "azure_code":
        t, ctx, gen = _azure(data_dir / "azure_llm_2023" / "AzureLLMInferenceTrace_code.csv")
    elif name == "azure_conv":
        t, ctx, gen = _azure(data_dir / "azure_llm_2023" / "AzureLLMInferenceTrace_conv.csv")
    elif name == "mooncake":
        t, ctx, gen = _mooncake(data_dir / "mooncake_fast25" / "conversation_trace.jsonl")
        # Its times come in 3 s buckets (about ten requests share each
        # timestamp); spreading a bucket's requests evenly over it keeps the
        # rate and removes a burst that is an artefact of the resolution.
        t = _spread_buckets(t, MOONCAKE_BUCKET_S)
    else:
        raise ValueError(f"unknown trace {name!r}; known: {', '.join(TRACES)}")
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order][0]
    work = ctx[order] / PREFILL_TOKENS_PER_S + gen[order] / DECODE_TOKENS_PER_S
    # The trace wraps around: the gap after its last request is one mean gap.
    span = float(t[-1]) + float(t[-1]) / max(len(t) - 1, 1)
    return Trace(name, t, work, span)


def rate_profile(base_rps: float, duration_s: float, seed: int, flash: synthetic.Spike | None) -> Floats:
    """Requests/s for each RATE_STEP_S step: the synthetic generator's load
    shape around base_rps, times (1 + the flash crowd's lift)."""
    util = synthetic.utilisation(1.0, [], duration_s=duration_s, interval_s=RATE_STEP_S, seed=seed)
    return np.asarray(base_rps * util * flash_factor(duration_s, flash), dtype=np.float64)


def flash_factor(duration_s: float, flash: synthetic.Spike | None) -> Floats:
    """Multiplier of the offered rate at the end of each rate step."""
    steps = int(duration_s // RATE_STEP_S)
    if flash is None:
        return np.ones(steps)
    t = (np.arange(steps) + 1) * RATE_STEP_S
    # Spike.extra lifts a base of 1.0 to peak_utilisation: a relative lift.
    return np.asarray([1.0 + flash.extra(float(x), 1.0) for x in t])


def synthetic_arrivals(base_rps: float, duration_s: float, seed: int, flash: synthetic.Spike | None) -> Arrivals:
    rng = np.random.default_rng(seed)
    rates = rate_profile(base_rps, duration_s, seed, flash)
    counts = rng.poisson(rates * RATE_STEP_S)
    starts = np.repeat(np.arange(len(rates)) * RATE_STEP_S, counts)
    times = np.sort(starts + rng.uniform(0, RATE_STEP_S, len(starts)))
    # Lognormal with mean 1 before clipping.
    work = rng.lognormal(-(SYNTHETIC_SIZE_SIGMA**2) / 2, SYNTHETIC_SIZE_SIGMA, len(times))
    return Arrivals(times, _normalised_sizes(work))


def trace_arrivals(
    trace: Trace, base_rps: float, duration_s: float, seed: int, flash: synthetic.Spike | None
) -> Arrivals:
    """The trace's arrivals at base_rps on average (times the flash crowd's
    lift), from shifted copies of the trace thinned at random."""
    rng = np.random.default_rng(seed)
    factor = flash_factor(duration_s, flash)
    peak = base_rps * float(factor.max())
    copies = math.ceil(peak / trace.rate) + 1
    times_parts, work_parts = [], []
    for _ in range(copies):
        shifted = (trace.times + rng.uniform(0, trace.span_s)) % trace.span_s
        # A run longer than the trace replays it again from the start.
        for lap in range(math.ceil(duration_s / trace.span_s)):
            t = shifted + lap * trace.span_s
            keep = t < duration_s
            times_parts.append(t[keep])
            work_parts.append(trace.work_s[keep])
    times = np.concatenate(times_parts)
    work = np.concatenate(work_parts)
    step = np.minimum((times // RATE_STEP_S).astype(np.intp), len(factor) - 1)
    accept = base_rps * factor[step] / (copies * trace.rate)
    kept = rng.uniform(0, 1, len(times)) < accept
    order = np.argsort(times[kept], kind="stable")
    return Arrivals(times[kept][order], _normalised_sizes(work[kept][order]))


def arrivals(source: str, base_rps: float, duration_s: float, seed: int, flash: synthetic.Spike | None) -> Arrivals:
    if source == "synthetic":
        return synthetic_arrivals(base_rps, duration_s, seed, flash)
    return trace_arrivals(load_trace(source), base_rps, duration_s, seed, flash)
