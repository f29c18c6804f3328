"""Requests the router placed whose end no outcome has reported yet, per
backend: the in-flight counts of callers that report outcomes
(ReportOutcomes) but do not send counts with Decide. A proxy's own counts
see a surge the moment it starts, where telemetry sees it an interval later;
a caller that reports how its requests ended gives the router the same
counts, for every caller of the router at once.

The counts are used only while the callers report, and report soon:
- of the decisions that left the count lately, at least MIN_REPORTED ended
  by an outcome rather than by ageing out. A caller that reports nothing
  (or only quality scores) leaves placement to the weighted rotation;
- outcomes reach the router within MAX_LAG_SHARE times the requests' own
  latency of their end, on the running means. A count includes every
  request that ended since its caller last reported, which on a fast
  backend is more than are in flight: a proxy that batches its reports for
  half a second, in front of requests of 50 ms, would make the fastest
  backends look the busiest;
- outcomes do not report requests longer than the time since they were
  decided, by more than MAX_EARLY_SHARE of their latency, on the running
  means. A request cannot end before the router placed it, so a caller
  whose latencies run ahead of the router's clock is replaying or
  simulating time (`make run`'s demo proxy reports a 200 ms request a few
  milliseconds after deciding it), and its ends say nothing about what is
  in flight now."""

from __future__ import annotations

from collections import OrderedDict

# A decision no outcome has ended after this long stops counting: its
# report was lost, or the caller does not report. Longer than any request
# a latency SLO is about.
MAX_AGE_S = 60.0
# Decisions waiting for their outcome at once; beyond, the oldest age out
# early (at 10,000 decisions/s, after 10 s instead of 60).
MAX_PENDING = 100_000
# Share of recently retired decisions that must have ended by an outcome.
MIN_REPORTED = 0.9
# The reports' lag (arrival minus the request's end), at most this share of
# the requests' latency. On the foresight benchmark's settings seeds the
# counts still beat the weighted rotation overall at a lag of about twice
# the latency (2.65% over the SLO or failed against 3.21%), but not in the
# heterogeneous pool (2.56% against 2.39%), where they did at half of it
# (1.73%); docs/routing.md has the table.
MAX_LAG_SHARE = 1.0
# How far ahead of the router's clock the reported latencies may run, as a
# share of the requests' latency. A real proxy's are never ahead (its
# latency is timed inside the span from decision to report); half leaves
# room for clocks that tick coarsely against short requests.
MAX_EARLY_SHARE = 0.5
# Weight of each retired decision in that share (a running mean): some two
# hundred reported ends switch the counts on, a dozen aged-out ones off.
REPORTED_WEIGHT = 0.01


class Outstanding:
    """Not locked: the routing table calls it under its own lock."""

    def __init__(self) -> None:
        # decision id -> (backend id, decided at), oldest first. Ordered by
        # links, not a plain dict: a dict emptied from the front walks its
        # dead slots to find the first live one.
        self._pending: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._counts: dict[str, int] = {}
        self._reported = 0.0
        # Running means of the reports' lag, of how far the latencies they
        # report run ahead of the time since the decision, and of those
        # latencies.
        self._lag_s = 0.0
        self._early_s = 0.0
        self._latency_s = 0.0

    @property
    def reported_share(self) -> float:
        """Running share of retired decisions that ended by an outcome."""
        return self._reported

    def issued(self, decision_id: str, backend_id: str, at: float) -> None:
        self._pending[decision_id] = (backend_id, at)
        self._counts[backend_id] = self._counts.get(backend_id, 0) + 1
        if len(self._pending) > MAX_PENDING:
            self._retire(next(iter(self._pending)), reported=False)

    def ended(self, decision_id: str, now: float, latency_ms: float | None = None) -> bool:
        """An outcome ended the decision, reported at `now` (the clock of
        `issued`); False when it no longer counted."""
        entry = self._pending.get(decision_id)
        if entry is None:
            return False
        if latency_ms is not None:
            latency_s = latency_ms / 1000.0
            lag_s = now - entry[1] - latency_s
            self._lag_s += REPORTED_WEIGHT * (max(lag_s, 0.0) - self._lag_s)
            self._early_s += REPORTED_WEIGHT * (max(-lag_s, 0.0) - self._early_s)
            self._latency_s += REPORTED_WEIGHT * (latency_s - self._latency_s)
        self._retire(decision_id, reported=True)
        return True

    def counts(self, now: float) -> dict[str, int] | None:
        """Pending decisions per backend (backends with none are left out),
        or None while the callers are not seen to report, to report soon, or
        to report in the router's time.
        The mapping is the live one, not a copy: issued and ended change it."""
        pending = self._pending
        oldest = now - MAX_AGE_S
        while pending:
            decision_id = next(iter(pending))
            if pending[decision_id][1] > oldest:
                break
            self._retire(decision_id, reported=False)
        if (
            self._reported < MIN_REPORTED
            or self._lag_s > MAX_LAG_SHARE * self._latency_s
            or self._early_s > MAX_EARLY_SHARE * self._latency_s
        ):
            return None
        return self._counts

    def _retire(self, decision_id: str, *, reported: bool) -> None:
        backend_id, _ = self._pending.pop(decision_id)
        left = self._counts[backend_id] - 1
        if left:
            self._counts[backend_id] = left
        else:
            del self._counts[backend_id]
        self._reported += REPORTED_WEIGHT * ((1.0 if reported else 0.0) - self._reported)
