import threading

from services.common.changes import ChangeFeed


def test_changes_coalesce_per_key_until_read():
    feed = ChangeFeed()
    sub = feed.subscribe()
    for _ in range(100):
        feed.publish(["a", "b"])
    assert sub.wait(0) == {"a", "b"}
    assert sub.wait(0) == set()


def read_in_thread(feed: ChangeFeed, act) -> set[str] | None:
    """Waits on a subscription in another thread while `act` runs here; the
    10 s wait would fail the join if the reader were not woken."""
    sub = feed.subscribe()
    got: list[set[str] | None] = []
    reader = threading.Thread(target=lambda: got.append(sub.wait(10)))
    reader.start()
    act()
    reader.join(5)
    assert not reader.is_alive()
    return got[0]


def test_a_waiting_reader_wakes_on_publish():
    feed = ChangeFeed()
    assert read_in_thread(feed, lambda: feed.publish(["x"])) == {"x"}


def test_a_waiting_reader_wakes_on_close():
    feed = ChangeFeed()
    assert read_in_thread(feed, feed.close) is None


def test_a_closed_subscription_stops_receiving():
    feed = ChangeFeed()
    sub = feed.subscribe()
    sub.close()
    feed.publish(["a"])
    assert sub.wait(0) is None
