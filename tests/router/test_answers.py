from ace.v1 import router_pb2
from services.router.answers import Answers, build
from services.router.outcomes import DecisionLog
from services.router.policy import Settings
from services.router.table import Decided, RoutingTable, Update

S = Settings(open_after_s=0)


def update(backend_id: str, t: float, predicted: float) -> Update:
    return Update(backend_id, as_of=t, points=30, observed_ms=100.0, predicted_ms=predicted, covered_s=290.0)


def table_of(*updates: Update) -> RoutingTable:
    table = RoutingTable(S, DecisionLog())
    table.apply(list(updates))
    return table


def fields_of(decided: Decided, request_id: str) -> router_pb2.Decision:
    """The answer built afresh, as for a choice that does not repeat."""
    return Answers().answer(request_id, decided, repeats=False)


def test_a_repeated_choice_answers_as_a_fresh_build_with_each_request_its_own_ids():
    table = table_of(update("a", 10.5, 100), update("b", 10.5, 400))
    answers = Answers()
    seen = []
    for i in range(6):
        decided = table.decide(["a", "b"])
        got = answers.answer(f"r{i}", decided, repeats=True)
        assert got == fields_of(decided, f"r{i}")
        seen.append(got.decision_id)
    assert len(set(seen)) == 6


def test_a_kept_answer_is_not_used_once_what_the_table_says_of_the_backend_changes():
    table = table_of(update("a", 10, 100), update("b", 10, 120))
    answers = Answers()
    before = answers.answer("r", table.decide(["a"]), repeats=True)
    table.apply([update("a", 20, 250)])
    decided = table.decide(["a"])
    after = answers.answer("r", decided, repeats=True)
    assert (before.predicted_latency_ms, after.predicted_latency_ms) == (100, 250)
    assert after == fields_of(decided, "r")


def test_the_same_choice_with_other_facts_is_answered_with_those_facts():
    table = table_of(update("a", 10, 100))
    decided = table.decide(["a"])
    answers = Answers()
    answers.answer("r", decided, repeats=True)
    later = type(decided)(decided.choice, decided.basis, "v9", decided.state, 123.0, 99.0, "id-2")
    got = answers.answer("s", later, repeats=True)
    assert (got.model_version, got.predicted_latency_ms, got.as_of.seconds, got.decision_id) == ("v9", 123, 99, "id-2")


def test_answers_with_in_flight_counts_are_built_and_not_kept():
    table = table_of(update("a", 10, 100), update("b", 10, 120))
    answers = Answers()
    decided = table.decide(["a", "b"], {"a": 3, "b": 1})
    got = answers.answer("r", decided, repeats=False)
    assert (got.request_id, got.decision_id, got.backend_id) == ("r", decided.decision_id, "b")
    assert got.predicted_latency_ms == 120 and got.as_of.seconds == 10
    assert build(decided).request_id == ""
    assert answers._kept == {}
