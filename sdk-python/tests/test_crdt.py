"""CRDT keyspaces through both Python clients: the typed handles on one node, counters and
sets updated in two datacenters at once converging to the same value in both, and the same
across a cut WAN link."""

import asyncio
import uuid

import meridian
import pytest
from conftest import eventually


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_typed_handles_through_the_blocking_client(node):
    with meridian.Client(node, timeout=20) as c:
        hits, carts, flags, names, profiles = (unique(p) for p in ("hits", "carts", "flags", "names", "profiles"))
        for name, kind in ((hits, "counter"), (carts, "set"), (flags, "flag"), (names, "register"), (profiles, "map")):
            c.create_keyspace(name, kind=kind)
        assert {k.name: k.kind for k in c.list_keyspaces()}[hits] == "counter"

        counter = c.counter(hits, "home")
        assert counter.value() == 0
        assert counter.increment(5) == 5
        assert counter.decrement(2) == 3
        assert counter.increment() == 4
        # An amount past 64 bits names the limit; one that is not an int stays a TypeError.
        with pytest.raises(meridian.InvalidArgument, match=r"does not fit in a 64-bit signed integer"):
            counter.increment(2**63)
        with pytest.raises(meridian.InvalidArgument, match=r"-2\*\*63 to 2\*\*63 - 1"):
            counter.decrement(-(2**64))
        with pytest.raises(TypeError):
            counter.increment(1.5)  # type: ignore[arg-type]
        assert counter.increment(2**62) == 2**62 + 4

        cart = c.set(carts, "u1")
        assert cart.add(["pear", b"apple"]) == ["apple", "pear"]
        seen = cart.fetch()
        cart.add(["pear"])
        assert cart.remove(["pear", "apple"], seen.context) == ["pear"]
        assert cart.add([b"\xff"]) == ["pear", {"base64": "/w=="}]
        with pytest.raises(meridian.InvalidArgument, match="a list"):
            cart.add("pear")

        flag = c.flag(flags, "dark")
        assert flag.get() is False
        assert flag.enable() is True
        assert flag.disable() is False

        reg = c.register(names, "u1")
        assert reg.fetch().value is None
        assert reg.assign("Ada").value == "Ada"

        profile = c.map(profiles, "u1")
        out = profile.update([{"update": {"field": "visits:counter", "op": {"increment": 1}}}])
        assert out.value == {"visits:counter": 1}

        # Operations that do not fit are InvalidArgument, naming both.
        with pytest.raises(meridian.InvalidArgument, match="`add` does not apply to a counter"):
            c.set(hits, "home").add(["x"])
        with pytest.raises(meridian.InvalidArgument, match="`put` does not apply to a counter"):
            c.put(hits, "home", b"5")
        with pytest.raises(meridian.InvalidArgument, match="unknown operation"):
            c.apply(hits, "home", [{"grow": 1}])


def test_typed_handles_through_the_async_client(node):
    async def main():
        async with await meridian.AsyncClient.connect(node, timeout=20) as c:
            hits = unique("hits")
            await c.create_keyspace(hits, kind="counter")
            counter = c.counter(hits, "k")
            results = await asyncio.gather(*(counter.increment(i) for i in range(1, 11)))
            assert max(results) == 55
            assert await counter.value() == 55
            carts = unique("carts")
            await c.create_keyspace(carts, kind="set")
            assert await c.set(carts, "k").add(["a"]) == ["a"]

    asyncio.run(main())


def test_counters_and_sets_updated_in_both_dcs_converge(cluster):
    with meridian.Client(cluster["dc1"], local_dc="dc1", timeout=20) as dc1, meridian.Client(
        cluster["dc2"], local_dc="dc2", timeout=20
    ) as dc2:
        hits, carts = unique("hits"), unique("carts")
        dc1.create_keyspace(hits, kind="counter")
        dc1.create_keyspace(carts, kind="set")
        for _ in range(10):
            dc1.counter(hits, "views").increment(1, consistency="LOCAL_ONE")
            dc2.counter(hits, "views").increment(10, consistency="LOCAL_ONE")
        dc1.set(carts, "cart").add(["milk"], consistency="LOCAL_ONE")
        dc2.set(carts, "cart").add(["eggs"], consistency="LOCAL_ONE")
        for client, dc in ((dc1, "dc1"), (dc2, "dc2")):
            eventually(lambda: client.counter(hits, "views").value(consistency="LOCAL_ONE") == 110, f"{dc} counts 110")
            eventually(
                lambda: client.set(carts, "cart").members(consistency="LOCAL_ONE") == ["eggs", "milk"],
                f"{dc} holds both adds",
            )


def test_counters_and_sets_across_a_dc_partition(wan_cluster):
    proxy = wan_cluster["proxy"]
    hits, carts = unique("hits"), unique("carts")
    with meridian.Client(wan_cluster["dc1"], local_dc="dc1", timeout=20) as dc1, meridian.Client(
        wan_cluster["dc2"], local_dc="dc2", timeout=20
    ) as dc2:
        dc1.create_keyspace(hits, kind="counter", replication={"dc1": 1, "dc2": 1})
        dc1.create_keyspace(carts, kind="set", replication={"dc1": 1, "dc2": 1})
        dc1.set(carts, "cart").add(["milk"], consistency="ALL")
        local = "LOCAL_QUORUM"
        proxy.command("block")
        try:
            for _ in range(10):
                dc1.counter(hits, "views").increment(1, consistency=local)
                dc2.counter(hits, "views").increment(10, consistency=local)
            # dc1 removes milk (it saw the add); dc2 adds it again, concurrently: add wins.
            dc1.set(carts, "cart").remove(["milk"], consistency=local)
            dc2.set(carts, "cart").add(["milk", "eggs"], consistency=local)
            assert dc1.counter(hits, "views").value(consistency=local) == 10
            assert dc2.counter(hits, "views").value(consistency=local) == 100
        finally:
            proxy.command("unblock")
        for client, dc in ((dc1, "dc1"), (dc2, "dc2")):
            eventually(lambda: client.counter(hits, "views").value(consistency=local) == 110, f"{dc} counts 110")
            eventually(
                lambda: client.set(carts, "cart").members(consistency=local) == ["eggs", "milk"],
                f"{dc} keeps the concurrent add",
            )
