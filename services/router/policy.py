"""The routing policy: one breaker per backend, driven by the forecast, and
the choice of a backend among candidates. Plain values only, so the router
server, the client library and the benchmarks all run this same code."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from services.common.features import MIN_POINTS


class State(enum.Enum):
    # Each state is also what placement does with the backend, cold or warm:
    # a state is never kept as a label that placement ignores.
    # The risk is below the threshold: the backend takes its share.
    CLOSED = "CLOSED"
    # The risk reached the threshold: traffic is moved away from it when
    # the caller gives in-flight counts (Settings.open_penalty); in the
    # weighted rotation it keeps Settings.open_share of its share.
    OPEN = "OPEN"
    # The risk fell below the lower mark after being open, or the open
    # breaker went Settings.probe_after_s without any figure: the backend
    # takes every other request of its share (in round robin; the mean of
    # open_share and 1 of it in the weighted rotation) until it has stayed
    # low for the recovery time.
    HALF_OPEN = "HALF_OPEN"


class Basis(enum.Enum):
    # The model's forecast of the worst latency over the horizon.
    FORECAST = "FORECAST"
    # The observed latency: the predictor is down or has no model.
    OBSERVED_LATENCY = "OBSERVED_LATENCY"
    # The window covers too little event time to trust any figure.
    COLD_START = "COLD_START"
    # Nothing is known about the candidates.
    NO_TELEMETRY = "NO_TELEMETRY"
    # The observed latency: the model has not yet passed the predictor's
    # trust gate on this fleet's labels; its forecast runs in shadow.
    MODEL_UNPROVEN = "MODEL_UNPROVEN"
    # The observed latency: it is above the proven model's forecast
    # (Settings.observed_floor).
    OBSERVED_OVER_FORECAST = "OBSERVED_OVER_FORECAST"


class Action(enum.Enum):
    PRIMARY = "PRIMARY"
    REROUTE = "REROUTE"
    ROUND_ROBIN = "ROUND_ROBIN"
    LAST_RESORT = "LAST_RESORT"


@dataclass(frozen=True)
class Settings:
    threshold_ms: float = 300.0
    # The breaker closes only below threshold x (1 - hysteresis).
    hysteresis: float = 0.15
    # Event time a breaker stays open before it may half-open.
    min_open_s: float = 30.0
    # Event time the risk must stay below the lower mark while half-open.
    recovery_s: float = 60.0
    # Event time a backend's window must cover (newest point minus oldest)
    # before its figures are trusted; less, and it is cold. Time, not a
    # count of points, so that warmth means the same history at any
    # reporting interval. 40 s is what the former rule of 5 points meant at
    # 10 s telemetry, where the foresight benchmark was measured, so that
    # cadence warms as before; at 60 s telemetry (Prometheus' default
    # scrape) a backend is warm at its second point instead of its fifth.
    warm_after_s: float = 40.0
    horizon_s: float = 300.0
    # Least-loaded choice only: requests an open backend counts beyond its
    # own, so it takes traffic only when every eligible one is this much busier.
    open_penalty: float = 2.0
    # Least-loaded choice only: requests a backend whose recent answers were
    # all failures counts beyond its own (in proportion to its failure
    # score), so a backend that fails fast does not look idle. 0: off.
    # Chosen on the foresight benchmark's settings seeds over 0, 2, 4, 8 and
    # 16: the fewest requests over the SLO or failed.
    error_penalty: float = 8.0
    # Seconds over which a failure score fades without new outcomes, so a
    # backend that was avoided is tried again: Linkerd's 10 s EWMA decay.
    error_decay_s: float = 10.0

    # A closed breaker opens only once its risk has stayed at or over the
    # threshold for this long (event time): a single high forecast does not
    # move traffic. 0: at the first one. Chosen on the foresight benchmark's
    # settings seeds over 0, 10 and 20 s: at 10 s (two updates 10 s apart)
    # the in-flight row's breakers changed state 4.2 times per backend-hour
    # instead of 25.5, none in the quiet class, at 2.13% over the SLO or
    # failed instead of 2.16%; 20 s bought nothing more.
    open_after_s: float = 10.0

    # An open breaker that has had no risk figure for this long (its backend
    # silent, or cold), in event time against the newest telemetry of the
    # fleet, half-opens: a drained backend that reports only while it
    # serves would otherwise never send the figure that closes it. Envoy's
    # outlier ejection does the same with a time bound. 300 s is the
    # forecast horizon: the verdict that opened the breaker was about the
    # next 300 s, and once they have passed unobserved it says nothing more.
    probe_after_s: float = 300.0

    # Without in-flight counts, each backend's share of turns follows its
    # estimated capacity (capacity_rps) instead of being equal: a weighted
    # rotation. Off: plain round robin, where open breakers drain. On the
    # foresight benchmark's settings seeds plain Decide put 8.23% of
    # requests over the SLO or failed in round robin, 3.21% weighted.
    share_by_capacity: bool = True
    # Weight of each interval's capacity estimate in the running one (an
    # EWMA): one interval's p95 is noisy, and shares that chase it queue.
    # Chosen on the settings seeds over 0.1, 0.3 and 1 with open breakers
    # drained (1: no smoothing, which put 4.99% over the SLO in the quiet
    # class against 1.90%), and checked without breakers (3.21% at 0.3,
    # 3.30% at 0.1).
    capacity_smoothing: float = 0.3
    # Weighted rotation only: the share of its weight a backend keeps while
    # its breaker is open (a half-open one keeps the mean of this and 1).
    # On the settings seeds, without the overload guard, 0, 0.1, 0.3, 0.5
    # and 1 put 8.67%, 7.24%, 4.17%, 3.31% and 3.20% of requests over the SLO
    # or failed; with it, 0.5, 0.7 and 1 put 3.36%, 3.21% and 3.21%. There,
    # every request is the router's own, and the capacity estimate already
    # moves them as a backend slows. 0.7 is the most shedding that cost
    # nothing measurable: it is what moves traffic ahead of a forecast
    # breach when the load that degrades a backend is not the router's
    # (make run's scenario; docs/routing.md gives what it bought there).
    open_share: float = 0.7
    # A backend whose latency is over the threshold while the pool's median
    # is not has its capacity estimate capped at load x threshold / latency:
    # a queue near saturation reads as a large capacity (a backend loaded by
    # other clients, 160 requests/s at a p95 of 1500 ms, would otherwise
    # draw more of the traffic). On the settings seeds it cost nothing
    # measurable (3.21% against 3.20%); capping whenever latency is over
    # the threshold, the pool's median regardless, cost 0.39 pp (3.59%), in
    # flash crowds, where every backend is over together.
    overload_guard: bool = True
    # Weighted rotation only: a capacity estimate within this share of the
    # candidates' mean counts as the mean, and one further off counts only
    # by what lies beyond it (a soft threshold; the shares still sum to the
    # estimates'). One interval's p95 is noisy, and in a pool of equal
    # backends every difference between estimates is that noise, which
    # shares then chase. On the foresight benchmark's settings seeds 0.05
    # put 3.13% of requests over the SLO or failed against 3.21% at 0: less
    # in 8 of 10 classes (quiet 1.98 -> 1.85%, flash crowd 6.11 -> 5.83%;
    # round robin: 1.80% and 5.77%), more in the heterogeneous pool (2.39 ->
    # 2.47%) and the cliff with its precursor (3.17 -> 3.25%), where the
    # differences are real. On four classes 0.1 bought a little more in the
    # flash crowd (5.72%) but cost the heterogeneous pool 0.22 pp, and a hard
    # threshold (small deviations zeroed, larger ones kept whole) bought less
    # (3.36-3.41% against 3.33%).
    capacity_deadband: float = 0.05
    # A proven model's breaker runs on the higher of its forecast and the
    # observed latency once the observed is at or over the lower mark
    # (close_below_ms), so it opens and stays open at least whenever a
    # reactive breaker would: a model learnt on calm days can forecast calm
    # through a breach under way. On Nezha's pods, a model trained on the
    # day before caught 19 of 24 breach episodes against the reactive
    # breaker's 21; with the floor 21, at the same precision (1.00) and no
    # fault-free opening. On the generated fleet it added 0-2 episodes to
    # the fleet's own model (2 at 60 s a point) at no cost in precision. On
    # the foresight benchmark's settings seeds it changed nothing (3.13% and
    # 2.07% over the SLO or failed, plain and in-flight, on or off): there
    # the models forecast at or above the observed latency nearly always
    # (below it in 9 of 1,032 updates of a --quick run).
    observed_floor: bool = True
    # Least-loaded choice only: the new request counts as 1 / speed
    # requests instead of 1, where speed is the backend's estimated capacity
    # over the candidates' mean, and at most 1 + open_penalty (a slow
    # backend never counts more than an open breaker does). Counts alone
    # treat a backend serving at half speed like a healthy one with the
    # same count. On the foresight benchmark's settings seeds: 2.08% over
    # the SLO or failed against 2.13% off, most of it in the capacity cliffs
    # (1.92% against 2.18% with the precursor); full shortest expected
    # delay, (in flight + 1) / speed, put 2.17%: the estimate is biased
    # low for a lightly loaded backend, and dividing the whole queue by it
    # starved the slow ones of the heterogeneous pool. (With the model
    # learning this placement's own reactive history: 2.07%, and 2.8
    # breaker changes per backend-hour; docs/routing.md.)
    rate_aware: bool = True
    # Decide without in-flight counts places least-loaded on the router's
    # own counts of requests whose end no outcome has reported yet
    # (services/router/outstanding.py), while the callers report outcomes
    # and soon enough. On the foresight benchmark's settings seeds, with
    # each outcome reported 20 ms after its request ended: 2.13% over the
    # SLO or failed, against 3.21% for the weighted rotation and 2.07% with
    # the caller's own counts (docs/routing.md has other delays).
    count_reported: bool = True

    @property
    def close_below_ms(self) -> float:
        return self.threshold_ms * (1.0 - self.hysteresis)

    def cold(self, points: int, covered_s: float) -> bool:
        """Whether a window of `points` points covering `covered_s` seconds
        of event time is too young for any figure to be trusted."""
        return points < MIN_POINTS or covered_s < self.warm_after_s


@dataclass
class Breaker:
    state: State = State.CLOSED
    # Event time of the last transition (or of the first observation).
    since: float = 0.0
    # While closed: event time since which every risk figure has been at or
    # over the threshold; None when the last one was under it.
    over_since: float | None = None
    # Event time of the newest risk figure; None before the first.
    figure_at: float | None = None

    def observe(self, risk_ms: float | None, at: float, settings: Settings) -> State | None:
        """Feeds one risk figure at one event time, or None for "no figure
        as of `at`" (the backend is cold, or silent while the fleet's
        telemetry has reached `at`); returns the new state when the breaker
        changed. Every transition happens here."""
        new: State | None = None
        if risk_ms is None:
            # No evidence either way: a run of high figures is broken, and an
            # open breaker's verdict expires after probe_after_s.
            self.over_since = None
            last = self.since if self.figure_at is None else max(self.since, self.figure_at)
            if self.state is State.OPEN and at - last >= settings.probe_after_s:
                new = State.HALF_OPEN
        elif self.state is State.CLOSED:
            if risk_ms < settings.threshold_ms:
                self.over_since = None
            else:
                if self.over_since is None:
                    self.over_since = at
                if at - self.over_since >= settings.open_after_s:
                    new = State.OPEN
                    self.over_since = None
        elif self.state is State.OPEN:
            if risk_ms < settings.close_below_ms and at - self.since >= settings.min_open_s:
                new = State.HALF_OPEN
        elif risk_ms >= settings.close_below_ms:
            new = State.OPEN
        elif at - self.since >= settings.recovery_s:
            new = State.CLOSED
        if risk_ms is not None:
            self.figure_at = at if self.figure_at is None else max(self.figure_at, at)
        if new is not None:
            self.state = new
            self.since = at
        return new


@dataclass
class Candidate:
    """What the choice needs to know about one backend."""

    backend_id: str
    # Its breaker's state, which placement follows whether it is cold or not.
    state: State
    cold: bool
    points: int
    # The figure the breaker runs on (forecast or observed); None when unknown.
    risk_ms: float | None
    basis: Basis
    # Half-open backends take every other turn; this says whether this one is due.
    probe_due: bool = True
    # Requests the caller has outstanding on this backend, when it says; None
    # when it does not. Given for any candidate, the choice is least-loaded.
    in_flight: int | None = None
    # Requests its recent failures count for in a least-loaded choice
    # (Settings.error_penalty x its failure score); set per choice.
    error_load: float = 0.0
    # Event time its window covers, seconds: what warmth is judged by.
    covered_s: float = 0.0
    # Requests/s it could serve, estimated from its newest telemetry
    # (capacity_rps); None while cold or unknown.
    capacity_rps: float | None = None


# ln(20): an M/M/1 queue's 95th percentile sojourn is ln(20) / (mu - lambda).
_P95_FACTOR = 2.995732273553991


def capacity_rps(load: float, latency_ms: float, error_rate: float, threshold_ms: float | None = None) -> float | None:
    """Requests/s a backend could serve, from one interval's offered load
    (requests/s) and p95 latency: mu = lambda + ln(20) / p95, which is exact
    for an M/M/1 queue at any load below its capacity, so the estimate does
    not move when the backend's share does (a share that followed latency
    itself would swing back and forth). Answers that are errors serve no
    one: the estimate is scaled by the share that are not. With
    `threshold_ms`, a latency over it caps the estimate at load x
    threshold / latency (Settings.overload_guard). None when the figures say
    nothing."""
    if not (latency_ms > 0.0) or load < 0.0:
        return None
    served = 1.0 - min(max(error_rate, 0.0), 1.0)
    rate = load + _P95_FACTOR * 1000.0 / latency_ms
    if threshold_ms is not None and latency_ms > threshold_ms:
        rate = min(rate, load * threshold_ms / latency_ms)
    return rate * served


def observe(
    breaker: Breaker,
    backend_id: str,
    points: int,
    predicted_ms: float | None,
    observed_ms: float,
    at: float,
    settings: Settings,
    proven: bool = True,
    *,
    covered_s: float,
    capacity: float | None = None,
) -> Candidate:
    """One update of a backend under `settings`: drives its breaker and
    returns what decisions read of it. A warm backend's breaker runs on the
    forecast, or on the observed latency when there is none (the predictor
    is down or has no model), when the model is not `proven` on this fleet
    (its forecast then only runs in shadow), or when the observed latency is
    the higher and at or over the lower mark (settings.observed_floor); a
    cold one's gets no figure, so it keeps its state, except that an open
    one half-opens once probe_after_s has passed without a figure.
    `covered_s` is the event time the window covers."""
    if settings.cold(points, covered_s):
        breaker.observe(None, at, settings)
        return Candidate(backend_id, breaker.state, True, points, None, Basis.COLD_START, covered_s=covered_s)
    if predicted_ms is None:
        basis, risk_ms = Basis.OBSERVED_LATENCY, observed_ms
    elif proven:
        # Only from the breaker's lower mark up, where the higher figure can
        # change what the breaker does. Below it a calibrated forecast sits
        # under a healthy backend's latency most of the time, and naming all
        # those decisions OBSERVED_OVER_FORECAST would hide the few where the
        # floor acts.
        if settings.observed_floor and observed_ms > predicted_ms and observed_ms >= settings.close_below_ms:
            basis, risk_ms = Basis.OBSERVED_OVER_FORECAST, observed_ms
        else:
            basis, risk_ms = Basis.FORECAST, predicted_ms
    else:
        basis, risk_ms = Basis.MODEL_UNPROVEN, observed_ms
    breaker.observe(risk_ms, at, settings)
    return Candidate(
        backend_id, breaker.state, False, points, risk_ms, basis, covered_s=covered_s, capacity_rps=capacity
    )


def expire(breaker: Breaker, candidate: Candidate, at: float, settings: Settings) -> Candidate | None:
    """Tells a breaker that the fleet's telemetry has reached event time
    `at` with no figure for its backend since the last update; returns the
    backend's new candidate when that half-opened its breaker, else None.
    A silent backend sends no update, so the caller runs this for its open
    breakers whenever the fleet's newest event time moves."""
    if breaker.observe(None, at, settings) is None:
        return None
    return replace(candidate, state=breaker.state, probe_due=True, in_flight=None, error_load=0.0)


class Choice:
    """What choose decided. Immutable once made. Its reason and fallbacks are
    put into words only when first read: a proxy picking locally rarely reads
    them, and wording them was most of a pick's cost (the foresight
    benchmark's profile). Whatever they say is fixed when the choice is made."""

    __slots__ = ("_fallbacks", "_reason", "_word", "action", "backend_id", "skipped")

    def __init__(
        self,
        backend_id: str,
        action: Action,
        reason: str = "",
        fallbacks: tuple[str, ...] = (),
        # Backends whose turn it was, passed over because of their breaker.
        skipped: tuple[str, ...] = (),
        word: Callable[[], tuple[str, tuple[str, ...]]] | None = None,
    ) -> None:
        self.backend_id = backend_id
        self.action = action
        self.skipped = skipped
        self._reason = reason
        self._fallbacks = fallbacks
        # Computes (reason, fallbacks) when given instead of them.
        self._word = word

    def _settle(self) -> None:
        word = self._word
        if word is not None:
            # Assigned before the word is dropped: a thread that finds no word
            # finds the result (two threads may both word it, alike).
            self._reason, self._fallbacks = word()
            self._word = None

    @property
    def reason(self) -> str:
        self._settle()
        return self._reason

    @property
    def fallbacks(self) -> tuple[str, ...]:
        self._settle()
        return self._fallbacks

    def _key(self) -> tuple[str, Action, str, tuple[str, ...], tuple[str, ...]]:
        return (self.backend_id, self.action, self.reason, self.fallbacks, self.skipped)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return "Choice(backend_id={!r}, action={}, reason={!r}, fallbacks={!r}, skipped={!r})".format(*self._key())


# Said after the reason when a decision rests on less than a forecast, or
# on a table no longer fed.
OBSERVED_NOTE = "; predictor unreachable or without a model: reactive fallback on observed latency"
UNPROVEN_NOTE = (
    "; model not yet proven on this fleet's labels (trust gate): reactive breaker on observed latency, "
    "forecast in shadow"
)
OVER_FORECAST_NOTE = "; observed latency above the forecast: the breaker runs on what it sees"
STALE_NOTE = "; feature store unreachable: deciding on the last known table"


def _notes(chosen: Candidate, stale: bool) -> str:
    if chosen.basis is Basis.OBSERVED_LATENCY:
        observed = OBSERVED_NOTE
    elif chosen.basis is Basis.MODEL_UNPROVEN:
        observed = UNPROVEN_NOTE
    elif chosen.basis is Basis.OBSERVED_OVER_FORECAST:
        observed = OVER_FORECAST_NOTE
    else:
        observed = ""
    return observed + STALE_NOTE if stale else observed


def _ms(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.0f} ms"


_OBSERVED_BASES = (Basis.OBSERVED_LATENCY, Basis.MODEL_UNPROVEN, Basis.OBSERVED_OVER_FORECAST)


def _risk_word(c: Candidate) -> str:
    return "observed" if c.basis in _OBSERVED_BASES else "forecast"


def _eligible(c: Candidate) -> bool:
    # Cold or not, the breaker decides: a cold backend whose breaker is open
    # stays drained until it half-opens (Settings.probe_after_s), so the
    # state the router reports is what placement does.
    return c.state is State.CLOSED or (c.state is State.HALF_OPEN and c.probe_due)


def _fallback_rank(c: Candidate) -> tuple[int, float]:
    # Identity tests, not a dict of states: hashing an Enum runs Python code,
    # and this runs for every candidate of every decision.
    if c.state is State.OPEN:
        tier = 3
    elif c.cold:
        tier = 2
    elif c.state is State.CLOSED:
        tier = 0
    else:
        tier = 1
    return tier, c.risk_ms if c.risk_ms is not None else 0.0


def choose(candidates: Sequence[Candidate], turn: int, settings: Settings, stale: bool = False) -> Choice:
    """Round robin over the candidates, skipping backends whose breaker is
    open. `turn` is the caller's rotation counter. The rotation decides whose
    turn it is; the breakers decide whether that backend may take it. If not,
    the turn goes to one of the eligible backends, chosen by how many full
    rotations have passed, so successive turns of a drained backend go to
    each eligible backend in order: its share spreads evenly. (Handing it to
    the next backend in the rotation doubled that one's load, opened its
    breaker too, and cascaded; the foresight benchmark showed it.)

    When the caller says how many requests it has outstanding per candidate
    (`in_flight`), the choice is least-loaded instead: the eligible backend
    with the fewest, ties going to the earliest in the rotation. Round robin
    leaves queueing to chance; the foresight benchmark measured twice the
    requests over the SLO with it.

    `stale` says the candidates come from a table the feature store no
    longer feeds; the reason says so."""
    if not candidates:
        raise ValueError("choose needs at least one candidate")
    if any(c.in_flight is not None for c in candidates):
        return _least_loaded(candidates, turn, settings, stale)
    if weighted(candidates, settings):
        return _weighted(candidates, turn, settings, stale)
    n = len(candidates)
    start = turn % n
    primary = candidates[start]
    chosen: Candidate | None = None
    skipped: list[str] = []
    if _eligible(primary):  # the common case, without the loop's bookkeeping
        chosen = primary
    else:
        eligible = [c for c in candidates if _eligible(c)]
        if eligible:
            chosen = eligible[(turn // n) % len(eligible)]
            skipped.append(primary.backend_id)
        else:
            skipped.extend(c.backend_id for c in candidates)
    return _explain(candidates, primary, chosen, skipped, settings, stale)


# Turns of the weighted rotation's cycle. Turn k draws the point
# (k x 610 mod 987 + 1/2) / 987 of [0, 1): 610/987 is a ratio of Fibonacci
# numbers near the golden ratio, so the points of any run of turns are
# spread evenly (each backend's turns are spaced out, not bunched) and
# every 987 turns give each backend its share to within one turn. A cycle
# that repeats lets the client library keep each turn's choice.
WEIGHTED_CYCLE = 987
_STRIDE = 610


def weighted(candidates: Sequence[Candidate], settings: Settings) -> bool:
    """Whether a choice among these candidates without in-flight counts is
    a weighted rotation (else round robin)."""
    return settings.share_by_capacity and any(c.capacity_rps is not None for c in candidates)


def _draw(candidates: Sequence[Candidate], weights: list[float], total: float, u: float) -> Candidate:
    mark = u * total
    for c, w in zip(candidates, weights, strict=True):
        mark -= w
        if mark < 0.0:
            return c
    return candidates[-1]


def _shares(candidates: Sequence[Candidate]) -> list[float]:
    """Each candidate's weight in the rotation: its capacity estimate, or
    the mean of the known ones when it has none (cold, or just added)."""
    known = [c.capacity_rps for c in candidates if c.capacity_rps is not None]
    mean = sum(known) / len(known)
    return [mean if c.capacity_rps is None else c.capacity_rps for c in candidates]


def _shrunk(weights: list[float], deadband: float) -> list[float]:
    """Each weight's deviation from the mean, less `deadband` of the mean
    (none when smaller), rescaled to the weights' own sum."""
    total = sum(weights)
    if not deadband > 0.0 or not total > 0.0:
        return weights
    mean = total / len(weights)
    deviations = [w / mean - 1.0 for w in weights]
    shrunk = [mean * (1.0 + math.copysign(max(abs(d) - deadband, 0.0), d)) for d in deviations]
    scale = total / sum(shrunk)
    return [w * scale for w in shrunk]


def _kept(state: State, open_share: float) -> float:
    """The share of its weight a backend keeps in the weighted rotation."""
    if state is State.CLOSED:
        return 1.0
    return open_share if state is State.OPEN else 0.5 * (1.0 + open_share)


def _weighted(candidates: Sequence[Candidate], turn: int, settings: Settings, stale: bool) -> Choice:
    """Weighted rotation: each backend's share of turns is its estimated
    capacity's share of the candidates' (capacity_rps), so a backend that
    serves at half speed gets half the requests, not a quarter of the pool's
    whatever its speed. An open breaker keeps settings.open_share of its
    weight, a half-open one the mean of that and 1. The primary is drawn
    over every candidate at full weight, the choice at the weights the
    breakers leave, from the same point, so they differ only when a breaker
    moved the turn."""
    weights = _shrunk(_shares(candidates), settings.capacity_deadband)
    u = ((turn % WEIGHTED_CYCLE) * _STRIDE % WEIGHTED_CYCLE + 0.5) / WEIGHTED_CYCLE
    total = sum(weights)
    if not total > 0.0:
        weights, total = [1.0] * len(candidates), float(len(candidates))
    primary = _draw(candidates, weights, total, u)
    shed = settings.open_share
    if primary.state is State.CLOSED or shed >= 1.0:
        chosen = primary
    else:
        allowed = [_kept(c.state, shed) * w for c, w in zip(candidates, weights, strict=True)]
        room = sum(allowed)
        if not room > 0.0:
            return _explain(candidates, primary, None, [c.backend_id for c in candidates], settings, stale, total)
        chosen = _draw(candidates, allowed, room, u)
    skipped = [] if chosen is primary else [primary.backend_id]
    return _explain(candidates, primary, chosen, skipped, settings, stale, total)


def _least_loaded(candidates: Sequence[Candidate], turn: int, settings: Settings, stale: bool) -> Choice:
    """The least-loaded candidate, where a backend its breaker keeps from
    traffic counts `settings.open_penalty` requests more than it has: it
    gets a request only when every eligible backend is that much busier.
    A backend that has been failing counts its `error_load` more too (errors
    are load, as Linkerd's failure penalty and gRPC WRR's error utilisation
    have it): a backend that answers errors in a millisecond would otherwise
    always have the fewest in flight and draw every request.
    (Excluding it outright, as the rotation does, sent every request to the
    one or two eligible backends once most breakers were open, and melted
    them; the foresight benchmark measured it.) With settings.rate_aware,
    the request itself counts as more than one on a backend slower than
    the candidates' mean (and less on a faster one), so load is weighed
    against speed. Ties go to the lower risk, then to the rotation's order.
    The primary is the least-loaded candidate with no breakers or failures
    counted; REROUTE says they moved the request."""
    n = len(candidates)
    start = turn % n
    penalty = settings.open_penalty
    primary = chosen = candidates[start]
    best_plain: tuple[float, float] | None = None
    best: tuple[float, float] | None = None
    speeds = _speeds(candidates) if settings.rate_aware else None
    most = 1.0 + penalty
    for k in range(n):
        i = (start + k) % n
        c = candidates[i]
        load = float(c.in_flight or 0)
        if speeds is not None:
            load += min(1.0 / speeds[i], most)
        risk = c.risk_ms if c.risk_ms is not None else 0.0
        plain = (load, risk)
        extra = c.error_load if _eligible(c) else c.error_load + penalty
        key = (load + extra, risk) if extra else plain
        if best_plain is None or plain < best_plain:
            primary, best_plain = c, plain
        if best is None or key < best:
            chosen, best = c, key
    skipped: list[str] = []
    if not _eligible(chosen):
        if not any(_eligible(c) for c in candidates):
            return _explain(candidates, chosen, None, [c.backend_id for c in candidates], settings, stale)
        reason = (
            f"every backend that may take traffic has at least {penalty:.0f} more requests in flight than "
            f"{chosen.backend_id} ({chosen.in_flight or 0}){', weighed by speed' if speeds is not None else ''}: "
            f"sent there despite its {chosen.state.value} breaker "
            f"({_risk_word(chosen)} {_ms(chosen.risk_ms)}){_notes(chosen, stale)}"
        )
        return Choice(
            chosen.backend_id, Action.LAST_RESORT, reason, _ranked([c for c in candidates if c is not chosen])
        )
    if chosen is not primary:
        skipped = [
            c.backend_id for c in candidates if not _eligible(c) and (c.in_flight or 0) <= (chosen.in_flight or 0)
        ]
    return _explain(candidates, primary, chosen, skipped, settings, stale)


def _speeds(candidates: Sequence[Candidate]) -> list[float] | None:
    """Each candidate's capacity over the candidates' mean (1 for one with
    none), or None when none is known."""
    if not any(c.capacity_rps is not None for c in candidates):
        return None
    speeds = _shares(candidates)
    mean = sum(speeds) / len(speeds)
    if not mean > 0.0:
        return None
    # One that answers only errors weighs 0: it comes last, not never.
    return [max(s / mean, 1e-6) for s in speeds]


def _ranked(rest: list[Candidate]) -> tuple[str, ...]:
    """The fallbacks' ids, best first (sorts `rest` in place)."""
    rest.sort(key=_fallback_rank)
    return tuple([c.backend_id for c in rest])


def _explain(
    candidates: Sequence[Candidate],
    primary: Candidate,
    chosen: Candidate | None,
    skipped: list[str],
    settings: Settings,
    stale: bool,
    # The candidates' summed capacity when the choice was a weighted rotation.
    capacity: float | None = None,
) -> Choice:
    if chosen is None:
        # Every request to the single least risky backend would overload it
        # and move the whole load to the next one an interval later (the
        # foresight benchmark measured it); the plain rotation spreads it.
        chosen = primary
        action = Action.LAST_RESORT
    elif chosen.cold:
        action = Action.ROUND_ROBIN
    elif chosen is primary:
        action = Action.PRIMARY
    else:
        action = Action.REROUTE
    skipped_before = tuple([b for b in skipped if b != chosen.backend_id]) if skipped else ()
    # What the words need, as it is now: the caller may change in-flight
    # counts, and the rotation its list of candidates, after this returns.
    picked, others, in_flight = chosen, [c for c in candidates if c is not chosen], chosen.in_flight
    failing = primary.error_load if _eligible(primary) else 0.0

    def word() -> tuple[str, tuple[str, ...]]:
        reason = _reason(action, primary, picked, in_flight, failing, settings, capacity) + _notes(picked, stale)
        return reason, _ranked(others)

    return Choice(chosen.backend_id, action, skipped=skipped_before, word=word)


def _weighed(chosen: Candidate, capacity: float, settings: Settings) -> str:
    """Why a weighted rotation gave the chosen backend this turn."""
    own = chosen.capacity_rps
    if own is None:
        return f"{chosen.backend_id} by weighted rotation, at the mean capacity of the known backends"
    reason = (
        f"{chosen.backend_id} by weighted rotation: its estimated capacity is {own / capacity:.0%} of the "
        f"candidates' ({own:.0f} of {capacity:.0f} requests/s); {_risk_word(chosen)} {_ms(chosen.risk_ms)}"
    )
    if chosen.state is State.CLOSED:
        return reason + f" against {settings.threshold_ms:.0f} ms"
    keep = _kept(chosen.state, settings.open_share)
    return (
        reason + f", breaker {chosen.state.value} (threshold {settings.threshold_ms:.0f} ms within "
        f"{settings.horizon_s:.0f} s): it keeps {min(keep, 1.0):.0%} of its share"
    )


def _reason(
    action: Action,
    primary: Candidate,
    chosen: Candidate,
    in_flight: int | None,
    failing: float,
    settings: Settings,
    capacity: float | None,
) -> str:
    if action is Action.LAST_RESORT:
        if in_flight is not None:
            how = "the least loaded of them"
        else:
            how = "round robin over all of them" if capacity is None else "weighted rotation over all of them"
        return (
            f"every candidate's breaker is open: {how}, {chosen.backend_id} "
            f"({_risk_word(chosen)} {_ms(chosen.risk_ms)} against {settings.threshold_ms:.0f} ms); "
            "fallbacks list the least risky first"
        )
    if action is Action.ROUND_ROBIN:
        if in_flight is not None:
            how = _load_word(chosen, in_flight, settings)
        else:
            how = "round robin" if capacity is None else "weighted rotation at the mean capacity of the known backends"
        reason = (
            f"{chosen.backend_id} is cold (its {chosen.points} points cover {chosen.covered_s:.0f} of "
            f"{settings.warm_after_s:.0f} s): {how}"
        )
        if chosen is not primary:
            reason += f"; {primary.backend_id} skipped, breaker {primary.state.value}"
        return reason
    if action is Action.PRIMARY and capacity is not None:
        return _weighed(chosen, capacity, settings)
    if action is Action.PRIMARY:
        why = "next in rotation" if in_flight is None else _load_word(chosen, in_flight, settings)
        return (
            f"{chosen.backend_id} {why}, {_risk_word(chosen)} {_ms(chosen.risk_ms)} "
            f"below {settings.threshold_ms:.0f} ms"
        )
    if failing:
        return (
            f"{primary.backend_id} has been failing: it counts {failing:.1f} more requests in flight than it has "
            f"(error penalty {settings.error_penalty:g}); sent to {chosen.backend_id} "
            f"({_risk_word(chosen)} {_ms(chosen.risk_ms)})"
        )
    return (
        f"{primary.backend_id} breaker {primary.state.value} ({_risk_word(primary)} {_ms(primary.risk_ms)}, "
        f"threshold {settings.threshold_ms:.0f} ms within {settings.horizon_s:.0f} s); "
        f"sent to {chosen.backend_id} ({_risk_word(chosen)} {_ms(chosen.risk_ms)})"
    )


def _load_word(chosen: Candidate, in_flight: int, settings: Settings) -> str:
    if settings.rate_aware and chosen.capacity_rps is not None:
        return f"least loaded for its speed ({in_flight} in flight, capacity {chosen.capacity_rps:.0f} requests/s)"
    return f"fewest in flight ({in_flight})"


def round_robin(names: Sequence[str], turn: int, reason: str) -> Choice:
    """Plain rotation over backend names, breakers ignored: what the router
    does before it has any telemetry, and what the client library does when
    its table can no longer be trusted."""
    if not names:
        raise ValueError("round_robin needs at least one name")
    pick = names[turn % len(names)]
    return Choice(pick, Action.ROUND_ROBIN, reason, tuple(n for n in names if n != pick))
