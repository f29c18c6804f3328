from services.common.errors import InvalidInput
from services.common.grpc_errors import MAX_DETAILS, details_of


def test_a_short_message_is_sent_whole():
    assert details_of(InvalidInput("matrix.schema_version: got 'x'")) == "matrix.schema_version: got 'x'"


def test_a_message_quoting_a_huge_value_is_cut_and_keeps_its_field():
    # A 2 MiB value quoted in full would exceed the client's metadata limit,
    # and the client would see RESOURCE_EXHAUSTED instead of the status.
    text = details_of(InvalidInput("matrix.schema_version: got " + "h" * (2 << 20)))
    assert len(text) <= MAX_DETAILS
    assert text.startswith("matrix.schema_version: got hhh") and text.endswith("characters cut)")
