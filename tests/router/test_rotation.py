"""The rotation both the router's table and the client library decide with."""

from dataclasses import replace

import pytest

from services.common.errors import FailedPrecondition, InvalidInput
from services.router.policy import Action, Basis, Candidate, Settings, State, choose
from services.router.rotation import NO_TELEMETRY_REASON, Rotation

S = Settings(threshold_ms=300, warm_after_s=40)


def warm(backend_id: str, risk: float, state: State = State.CLOSED) -> Candidate:
    return Candidate(backend_id, state, cold=False, points=30, risk_ms=risk, basis=Basis.FORECAST)


def test_picks_are_policy_choices_in_turn():
    rotation = Rotation(S)
    cands = [warm("a", 100), warm("b", 420, State.OPEN), warm("c", 120)]
    for c in reversed(cands):  # insertion order does not matter: the whole table is sorted by id
        rotation.put(c)
    picks = [rotation.pick(())[0] for _ in range(6)]
    assert picks == [choose(cands, turn, S) for turn in range(6)]
    named = rotation.pick(["c", "a"])[0]
    assert named == choose([cands[2], cands[0]], 6, S)


def test_kept_choices_are_the_policy_s_own_and_follow_every_change():
    rotation = Rotation(S)
    cands = [
        Candidate("a", State.CLOSED, False, 30, 100.0, Basis.FORECAST, capacity_rps=30.0),
        Candidate("b", State.OPEN, False, 30, 420.0, Basis.FORECAST, capacity_rps=10.0),
        Candidate("c", State.CLOSED, False, 30, 120.0, Basis.FORECAST, capacity_rps=20.0),
    ]
    for c in cands:
        rotation.put(c)
    # Twice round the weighted cycle: the second time answers from what the first kept.
    turns = 2 * 987 + 5
    assert [rotation.pick(["a", "b", "c"])[0] for _ in range(turns)] == [choose(cands, t, S) for t in range(turns)]
    rotation.settings = Settings(threshold_ms=300, warm_after_s=40, open_share=0.0)
    assert {rotation.pick(["a", "b", "c"])[0].backend_id for _ in range(50)} == {"a", "c"}
    rotation.stale = True
    assert "feature store unreachable" in rotation.pick(["a", "b", "c"])[0].reason
    rotation.put(replace(cands[0], state=State.OPEN))
    assert {rotation.pick(["a", "b", "c"])[0].backend_id for _ in range(50)} == {"c"}


def test_half_open_backend_takes_every_other_of_its_turns_and_starts_afresh_after_a_transition():
    rotation = Rotation(S)
    rotation.put(warm("a", 100))
    rotation.put(warm("b", 200, State.HALF_OPEN))
    b_turns = [rotation.pick(())[0] for _ in range(8)][1::2]  # b is primary on odd turns
    assert [p.backend_id for p in b_turns] == ["b", "a", "b", "a"]
    rotation.put(warm("b", 400, State.OPEN))
    rotation.put(warm("b", 200, State.HALF_OPEN))
    rotation.pick(())  # a's turn
    assert rotation.pick(())[0].backend_id == "b"  # first due turn after re-entering half-open


def test_replacing_a_backend_keeps_the_whole_table_current():
    rotation = Rotation(S)
    rotation.put(warm("a", 100))
    rotation.put(warm("b", 100))
    rotation.pick(())  # builds the sorted cache
    rotation.put(warm("a", 500, State.OPEN))
    assert {rotation.pick(())[0].backend_id for _ in range(4)} == {"b"}
    rotation.replace_all([warm("c", 100)])
    assert rotation.backend_ids() == ["c"]
    with pytest.raises(InvalidInput, match=r"candidates\[0\]: unknown backend 'a'"):
        rotation.pick(["a"])


def test_names_are_checked_like_the_router_checks_them():
    rotation = Rotation(S)
    rotation.put(warm("a", 100))
    with pytest.raises(InvalidInput, match=r"candidates\[1\]: must not be empty"):
        rotation.pick(["a", ""])
    with pytest.raises(InvalidInput, match="once"):
        rotation.pick(["a", "a"])
    with pytest.raises(InvalidInput, match=r"candidates\[1\]: unknown backend 'x'"):
        rotation.pick(["a", "x"])


def test_knowing_nothing_is_round_robin_over_the_names_given():
    rotation = Rotation(S)
    first, chosen = rotation.pick(["x", "y"])
    second, _ = rotation.pick(["x", "y"])
    assert chosen is None
    assert (first.backend_id, second.backend_id) == ("x", "y")
    assert first.action is Action.ROUND_ROBIN and first.reason == NO_TELEMETRY_REASON
    assert first.fallbacks == ("y",)
    with pytest.raises(FailedPrecondition, match="candidates"):
        rotation.pick([])


def test_round_robin_ignores_breakers_and_covers_the_known_table():
    rotation = Rotation(S)
    rotation.put(warm("a", 900, State.OPEN))
    rotation.put(warm("b", 100))
    picks = [rotation.round_robin((), "stale") for _ in range(4)]
    assert [p.backend_id for p in picks] == ["a", "b", "a", "b"]
    assert {p.action for p in picks} == {Action.ROUND_ROBIN}


def test_in_flight_counts_make_the_choice_least_loaded_for_that_call_only():
    rotation = Rotation(S)
    for c in (warm("a", 100), warm("b", 100), warm("c", 420, State.OPEN)):
        rotation.put(c)
    # Missing from the map counts 0: c has none in flight but its breaker is
    # open, so it counts 2 and a's 1 is less.
    choice, _ = rotation.pick((), in_flight={"b": 3, "a": 1})
    assert (choice.backend_id, choice.action, choice.skipped) == ("a", Action.REROUTE, ("c",))
    assert all(rotation.get(b).in_flight is None for b in "abc")  # type: ignore[union-attr]
    assert [rotation.pick(())[0].backend_id for _ in range(2)] == ["b", "a"]  # the rotation goes on


def loaded_pick(rotation: Rotation, counts: dict[str, int], now: float) -> str:
    return rotation.pick((), counts, now)[0].backend_id


def test_failures_count_as_load_until_they_fade():
    settings = Settings(error_penalty=4.0, error_decay_s=10.0)
    rotation = Rotation(settings)
    rotation.put(warm("a", 100))
    rotation.put(warm("b", 100))
    assert loaded_pick(rotation, {"a": 0, "b": 1}, now=0.0) == "a"
    for _ in range(4):
        rotation.note_outcome("a", failed=True, at=0.0)
    # Four failures in a row: score 1 - 0.75^4 = 0.68, load 2.7 more than a has.
    assert rotation.failure_score("a", 0.0) == pytest.approx(1 - 0.75**4)
    assert loaded_pick(rotation, {"a": 0, "b": 2}, now=0.0) == "b"
    # Ten seconds without outcomes fade it by e: 2.7 / e = 1.0 extra, fewer than b's 2 more.
    assert loaded_pick(rotation, {"a": 0, "b": 2}, now=10.0) == "a"
    # Answers pull it down too, and a score near zero is forgotten.
    for _ in range(20):
        rotation.note_outcome("a", failed=False, at=10.0)
    assert rotation.failure_score("a", 10.0) == 0.0
    # Successes on a backend with no failure on record change nothing.
    rotation.note_outcome("b", failed=False, at=10.0)
    assert rotation.failure_score("b", 10.0) == 0.0


def a_failing(settings: Settings) -> Rotation:
    """Backends a and b, and ten failures of a."""
    rotation = Rotation(settings)
    rotation.put(warm("a", 100))
    rotation.put(warm("b", 100))
    for _ in range(10):
        rotation.note_outcome("a", failed=True, at=0.0)
    return rotation


def test_error_penalty_zero_turns_failures_off():
    rotation = a_failing(Settings(error_penalty=0.0))
    assert loaded_pick(rotation, {"a": 0, "b": 1}, now=0.0) == "a"
    # What a choice set on the candidates is cleared after it.
    a = rotation.get("a")
    assert a is not None and a.error_load == 0.0 and a.in_flight is None


def test_without_in_flight_counts_failures_leave_the_rotation_alone():
    rotation = a_failing(Settings(error_penalty=4.0))
    assert {rotation.pick(())[0].backend_id for _ in range(2)} == {"a", "b"}
