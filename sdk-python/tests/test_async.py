"""The asyncio client against one real node."""

import asyncio
import uuid

import pytest

import meridian


def key() -> str:
    return "k-" + uuid.uuid4().hex


def run(coro):
    return asyncio.run(coro)


def test_operations_are_awaitable(node):
    async def main():
        async with await meridian.AsyncClient.connect(node, timeout=20) as c:
            k = key()
            w = await c.put("default", k, b"a")
            assert w.siblings == []
            r = await c.get("default", k)
            assert r.value == b"a"
            await c.delete("default", k, r.context)
            assert (await c.get("default", k)).siblings == []
            names = [ks.name for ks in await c.list_keyspaces()]
            assert "default" in names
        assert c.closed

    run(main())


def test_async_and_plain_resolvers(node):
    async def main():
        async with await meridian.AsyncClient.connect(node, timeout=20) as c:
            k = key()
            await c.put("default", k, b"a")
            await c.put("default", k, b"b")

            async def union(siblings):
                await asyncio.sleep(0.01)
                return b",".join(sorted(siblings))

            assert await c.get_resolved("default", k, union) == b"a,b"
            await c.put("default", k, b"c")
            carts = c.keyspace("default", resolver=lambda s: b"|".join(sorted(s)))
            assert await carts.get_resolved(k) == b"a,b|c"

            async def add(current):
                return current + b"+d"

            await carts.update(k, add)
            assert (await carts.get(k)).value == b"a,b|c+d"
            c.set_resolver("default", None)

    run(main())


def test_async_resolver_is_cut_off_at_its_timeout(node):
    async def main():
        async with await meridian.AsyncClient.connect(node, resolver_timeout=0.1, timeout=20) as c:
            k = key()
            await c.put("default", k, b"a")
            await c.put("default", k, b"b")
            finished = []

            async def slow(siblings):
                await asyncio.sleep(5)
                finished.append(True)
                return b"late"

            with pytest.raises(meridian.ResolverTimeout):
                await asyncio.wait_for(c.get_resolved("default", k, slow), 3)
            assert finished == []
            assert len((await c.get("default", k)).siblings) == 2

            class Mine(Exception):
                pass

            async def failing(siblings):
                raise Mine("own")

            with pytest.raises(Mine, match="own"):
                await c.get_resolved("default", k, failing)

    run(main())


def test_many_concurrent_calls_on_one_client(node):
    async def main():
        async with await meridian.AsyncClient.connect(node, timeout=20) as c:
            keys = [key() for _ in range(200)]
            await asyncio.gather(*(c.put("default", k, k) for k in keys))
            got = await asyncio.gather(*(c.get("default", k) for k in keys))
            assert [g.value for g in got] == [k.encode() for k in keys]

    run(main())


def test_errors_are_meridian_errors(node):
    async def main():
        async with await meridian.AsyncClient.connect(node, timeout=20) as c:
            with pytest.raises(meridian.NotFound) as e:
                await c.get("no-such-keyspace", "k")
            assert e.value.code == "NOT_FOUND" and isinstance(e.value, meridian.MeridianError)
            with pytest.raises(meridian.InvalidArgument):
                await c.put("default", b"", b"v")

    async def unreachable():
        await meridian.AsyncClient.connect("127.0.0.1:1", connect_timeout=1, timeout=1)

    run(main())
    with pytest.raises(meridian.Unavailable):
        run(unreachable())


EXIT_RIGHT_AFTER = """
import asyncio, sys, uuid
import meridian

async def main(endpoint):
    k = "exit-" + uuid.uuid4().hex
    async with await meridian.AsyncClient.connect(endpoint, timeout=20) as c:
        await c.put("default", k, b"a")
        await c.put("default", k, b"b")
        # Many calls end together: their threads hand results over as the program ends.
        await asyncio.gather(*(c.get("default", k) for _ in range(64)))
        await asyncio.gather(*(c.get_resolved("default", k, max) for _ in range(16)))

asyncio.run(main(sys.argv[1]))
"""


def test_a_program_exits_cleanly_right_after_its_last_await(node):
    # Python 3.11 ends a thread that asks for the GIL during finalization with pthread_exit,
    # which a Rust thread does not survive: before the fix, about one exit in ten aborted or
    # segfaulted. Every run must exit 0.
    import subprocess
    import sys

    for _ in range(30):
        done = subprocess.run(
            [sys.executable, "-c", EXIT_RIGHT_AFTER, node], capture_output=True, timeout=60
        )
        assert done.returncode == 0, (done.returncode, done.stderr.decode(errors="replace")[-2000:])
