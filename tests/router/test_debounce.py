"""The router as started with its defaults: a single high forecast moves no
traffic, the same forecast 10 s later opens the breaker (--open-after-s)."""

from __future__ import annotations

import pytest

from ace.v1 import router_pb2
from tests.fakes import vector
from tests.router.test_server import at

# The router with no flag but its addresses, in round robin: the default
# --open-after-s, and breakers alone move traffic (the weighted rotation's
# shares would move it too: b is slow).
DEFAULTS = pytest.mark.parametrize("router", [["--share-by-capacity", "off"]], indirect=True)


@DEFAULTS
def test_one_high_forecast_moves_no_traffic_and_a_second_one_10_s_later_opens_the_breaker(router):
    store, stub, watch = router
    # The forecast is the observed latency: b's is over the 300 ms threshold.
    store.batches.put([vector("a", 100, 120), vector("b", 100, 400)])
    watch.until(at("b", 100))
    assert watch.routes["b"].state == router_pb2.CLOSED
    decisions = [stub.Decide(router_pb2.DecideRequest(request_id=str(i))) for i in range(4)]
    assert {d.backend_id for d in decisions} == {"a", "b"}
    store.batches.put([vector("a", 110, 120), vector("b", 110, 400)])
    watch.until(at("b", 110))
    assert watch.routes["b"].state == router_pb2.OPEN
    decisions = [stub.Decide(router_pb2.DecideRequest(request_id=str(i))) for i in range(4)]
    assert {d.backend_id for d in decisions} == {"a"}


@DEFAULTS
def test_a_high_forecast_that_falls_back_resets_the_wait(router):
    store, _stub, watch = router
    for t, latency in ((100, 400), (110, 200), (120, 400)):
        store.batches.put([vector("a", t, 120), vector("b", t, latency)])
        watch.until(at("b", t))
        assert watch.routes["b"].state == router_pb2.CLOSED, t
