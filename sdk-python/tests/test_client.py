"""The blocking client against one real node."""

import threading
import time
import uuid

import pytest

import meridian


def key() -> str:
    return "k-" + uuid.uuid4().hex


@pytest.fixture
def client(node):
    with meridian.Client(node, timeout=20) as c:
        yield c


def test_put_get_delete_round_trip(client):
    k = key()
    assert client.get("default", k).value is None
    assert not client.get("default", k).found
    w = client.put("default", k, b"v1")
    assert w.siblings == []
    r = client.get("default", k)
    assert r.value == b"v1" and r.siblings == [b"v1"] and len(r) == 1
    client.put("default", k, "v2 as str", r.context)
    assert client.get("default", k).siblings == [b"v2 as str"]
    client.delete("default", k, client.get("default", k).context)
    assert client.get("default", k).siblings == []


def test_value_of_siblings_is_a_clear_error(client):
    k = key()
    client.put("default", k, b"a")
    client.put("default", k, b"b")
    r = client.get("default", k)
    assert sorted(r.siblings) == [b"a", b"b"]
    with pytest.raises(meridian.UnresolvedSiblings, match="2 siblings") as e:
        r.value
    assert e.value.code == "UNRESOLVED_SIBLINGS"


def test_context_round_trips_through_base64(client):
    k = key()
    client.put("default", k, b"a")
    ctx = client.get("default", k).context
    again = meridian.Context.from_base64(ctx.to_base64())
    assert again == ctx and bytes(again) == bytes(ctx) and hash(again) == hash(ctx)
    client.put("default", k, b"b", again)
    assert client.get("default", k).siblings == [b"b"]
    with pytest.raises(meridian.InvalidArgument, match="base64"):
        meridian.Context.from_base64("***")


def test_keyspace_handle_with_registered_resolver_and_level(client):
    name = "py-carts-" + uuid.uuid4().hex[:8]
    info = client.create_keyspace(name, kind="siblings")
    assert info.name == name and info.kind == "siblings"
    assert name in [k.name for k in client.list_keyspaces()]
    calls = []

    def union(siblings):
        calls.append(len(siblings))
        return b",".join(sorted(set(b",".join(siblings).split(b","))))

    carts = client.keyspace(name, resolver=union, consistency="quorum")
    assert carts.name == name
    carts.put("c", b"apples")
    carts.put("c", b"pears")
    assert carts.get_resolved("c") == b"apples,pears"
    assert calls == [2]
    carts.update("c", lambda cur: cur + b",plums")
    assert carts.get("c").value == b"apples,pears,plums"
    carts.update("c", lambda cur: None)
    assert carts.get("c").siblings == []
    # The registration is the client's: calls through the client use it too.
    client.put(name, "d", b"x")
    client.put(name, "d", b"y")
    assert client.get_resolved(name, "d") == b"x,y"
    client.set_resolver(name, None)
    client.put(name, "d", b"z")
    with pytest.raises(meridian.UnresolvedSiblings):
        client.get_resolved(name, "d")


def test_resolver_exception_reaches_the_caller_unchanged_and_nothing_is_written(client):
    k = key()
    client.put("default", k, b"a")
    client.put("default", k, b"b")
    mine = LookupError("the application's own")

    def failing(siblings):
        raise mine

    with pytest.raises(LookupError) as e:
        client.get_resolved("default", k, failing)
    assert e.value is mine
    with pytest.raises(LookupError):
        client.update("default", k, lambda v: v, failing)
    assert sorted(client.get("default", k).siblings) == [b"a", b"b"]

    def wrong_type(siblings):
        return 42

    with pytest.raises(TypeError, match="bytes or str"):
        client.get_resolved("default", k, wrong_type)
    assert len(client.get("default", k).siblings) == 2


def test_calling_the_blocking_client_from_a_resolver_is_a_clear_error(client):
    k = key()
    client.put("default", k, b"a")
    client.put("default", k, b"b")

    def nested(siblings):
        return client.get("default", "other").value or b"x"

    with pytest.raises(meridian.InvalidArgument, match="inside a resolver"):
        client.get_resolved("default", k, nested)
    assert len(client.get("default", k).siblings) == 2


def test_update_function_exception_writes_nothing(client):
    k = key()
    client.put("default", k, b"a")

    def boom(current):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        client.update("default", k, boom)
    assert client.get("default", k).siblings == [b"a"]


def test_resolver_past_its_timeout_leaves_the_siblings(node):
    with meridian.Client(node, resolver_timeout=0.1, timeout=20) as c:
        k = key()
        c.put("default", k, b"a")
        c.put("default", k, b"b")
        with pytest.raises(meridian.ResolverTimeout, match="timeout") as e:
            c.get_resolved("default", k, lambda s: time.sleep(0.3) or b"late")
        assert isinstance(e.value, meridian.Timeout) and e.value.code == "RESOLVER_TIMEOUT"
        assert len(c.get("default", k).siblings) == 2


def test_async_resolver_on_the_blocking_client_is_a_clear_error(client):
    k = key()
    client.put("default", k, b"a")
    client.put("default", k, b"b")

    async def resolver(siblings):
        return siblings[0]

    with pytest.raises(TypeError, match="AsyncClient"):
        client.get_resolved("default", k, resolver)
    assert len(client.get("default", k).siblings) == 2


def test_bad_input_names_the_problem(client):
    with pytest.raises(TypeError, match="key must be bytes or str"):
        client.get("default", 42)
    with pytest.raises(TypeError, match="value must be bytes or str"):
        client.put("default", "k", None)
    with pytest.raises(meridian.InvalidArgument, match="consistency") as e:
        client.get("default", "k", consistency="most")
    assert e.value.code == "INVALID_ARGUMENT"
    with pytest.raises(meridian.InvalidArgument, match="timeout"):
        client.get("default", "k", timeout=-1)
    with pytest.raises(meridian.InvalidArgument, match="16 bytes"):
        client.put("default", "k", b"v", request_id=b"short")
    with pytest.raises(TypeError, match="context"):
        client.put("default", "k", b"v", 7)
    with pytest.raises(TypeError, match="callable"):
        client.get_resolved("default", "k", "not callable")
    with pytest.raises(meridian.InvalidArgument, match="kind"):
        client.create_keyspace("x", kind="counter-ish")
    with pytest.raises(meridian.InvalidArgument) as e:
        client.put("default", "", b"v")
    assert "key" in str(e.value)
    with pytest.raises(meridian.NotFound) as e:
        client.get("no-such-keyspace", "k")
    assert e.value.code == "NOT_FOUND"


def test_consistency_and_timeout_per_call(client):
    k = key()
    client.put("default", k, b"v", consistency="ALL", timeout=10)
    assert client.get("default", k, consistency="local_quorum", timeout=10).value == b"v"


def test_unreachable_endpoint_fails_at_connect():
    with pytest.raises(meridian.Unavailable) as e:
        meridian.Client("http://127.0.0.1:1", connect_timeout=1, timeout=1)
    assert e.value.code == "UNAVAILABLE"


def test_closed_client_raises_cancelled(node):
    c = meridian.Client(node)
    with c:
        c.put("default", key(), b"v")
    assert c.closed
    with pytest.raises(meridian.Cancelled, match="closed"):
        c.get("default", "k")
    c.close()


def test_many_threads_share_one_client_without_deadlock(client):
    """8 threads × 1,000 reads of keys that have siblings, each resolved by a Python
    resolver that needs the GIL while other threads wait on the network."""
    keys = [key() for _ in range(8)]
    calls = [0] * 8
    errors = []

    def work(t):
        def resolver(siblings):
            calls[t] += 1
            return max(siblings)

        try:
            for i in range(1000):
                # A blind write makes the next read conflicting.
                client.put("default", keys[t], b"%d" % i)
                assert client.get_resolved("default", keys[t], resolver) is not None
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=300)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert errors == []
    assert all(c >= 999 for c in calls), calls
