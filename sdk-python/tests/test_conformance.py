"""The SDK conformance cases (conformance/cases.json), through the sync and the asyncio
client. The Rust and Node suites run the same file."""

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import pytest

import meridian

CASES = json.loads((Path(__file__).parents[2] / "conformance" / "cases.json").read_text())
TIMEOUT = CASES["resolver_timeout_ms"] / 1000


class Refused(Exception):
    """The application's own error, raised by the `raise` resolver."""


def text(v):
    if isinstance(v, str):
        return v
    return v["repeat"] * v["times"]


def items(v):
    return {i for i in (v or b"").decode().split(",") if i}


def join(s):
    return ",".join(sorted(s)).encode()


def sync_resolvers():
    def slow(siblings):
        time.sleep(TIMEOUT * 3)
        return b"too late"

    def refuse(siblings):
        raise Refused("resolver refused")

    return {"union": lambda s: join(set().union(*map(items, s))), "raise": refuse, "slow": slow}


def async_resolvers():
    async def union(siblings):
        await asyncio.sleep(0)
        return join(set().union(*map(items, siblings)))

    async def slow(siblings):
        await asyncio.sleep(TIMEOUT * 3)
        return b"too late"

    async def refuse(siblings):
        raise Refused("resolver refused")

    return {"union": union, "raise": refuse, "slow": slow}


def unique() -> str:
    return uuid.uuid4().hex[:10]


async def run_case(client, n, case, resolvers, run_id, awaiting):
    async def done(x):
        return (await x) if awaiting else x

    own = f"py-{run_id}-{n}"
    spec = case.get("keyspace", {})
    await done(
        client.create_keyspace(
            own,
            kind=spec.get("kind", "siblings"),
            max_value_bytes=spec.get("max_value_bytes"),
            max_siblings=spec.get("max_siblings"),
        )
    )
    saved, ids = {}, {}
    for s, step in enumerate(case["steps"]):
        at = f"case {case['name']!r}, step {s} ({step})"
        ks = step.get("keyspace", own).replace("{case}", own)
        key = text(step.get("key", ""))
        ctx = saved[step["context"]] if "context" in step else None
        if "context_raw" in step:
            ctx = step["context_raw"].encode()
        rid = ids.setdefault(step["request_id"], os.urandom(16)) if "request_id" in step else None
        resolver = resolvers[step["resolver"]] if "resolver" in step else None
        expect = step.get("expect", {})
        op = step["op"]
        try:
            if op == "put":
                out = await done(client.put(ks, key, text(step["value"]), ctx, request_id=rid))
            elif op == "delete":
                out = await done(client.delete(ks, key, ctx, request_id=rid))
            elif op == "get":
                out = await done(client.get(ks, key))
            elif op == "get_resolved":
                out = await done(client.get_resolved(ks, key, resolver))
            elif op == "update":
                def change(current, step=step):
                    if step.get("delete"):
                        return None
                    return join(items(current) | ({step["append"]} if "append" in step else set()))

                out = await done(client.update(ks, key, change, resolver))
            elif op == "apply":
                out = await done(client.apply(ks, key, step["ops"], ctx, request_id=rid))
            elif op == "fetch":
                out = await done(client.fetch(ks, key))
            elif op == "create_keyspace":
                out = await done(
                    client.create_keyspace(ks, kind=step.get("kind", "siblings"), replication=step.get("replication"))
                )
            else:
                raise AssertionError(f"unknown op {op}")
        except Refused as e:
            assert expect.get("error") == "RESOLVER_FAILED", f"{at}: {e!r}"
            continue
        except meridian.MeridianError as e:
            assert expect.get("error") == e.code, f"{at}: raised {e.code} {e}"
            continue
        assert "error" not in expect, f"{at}: succeeded, expected {expect['error']}"
        if "siblings" in expect:
            assert sorted(v.decode() for v in out.siblings) == sorted(expect["siblings"]), at
        if "crdt" in expect:
            assert out.value == expect["crdt"], f"{at}: {out.value!r}"
        if "value" in expect:
            want = expect["value"]
            assert out == (want.encode() if want is not None else None), at
        if "save" in step:
            saved[step["save"]] = out.context


@pytest.mark.parametrize("n", range(len(CASES["cases"])), ids=[c["name"] for c in CASES["cases"]])
def test_case_through_the_sync_client(node, n):
    with meridian.Client(node, resolver_timeout=TIMEOUT, timeout=20) as client:
        asyncio.run(run_case(client, n, CASES["cases"][n], sync_resolvers(), unique(), False))


@pytest.mark.parametrize("n", range(len(CASES["cases"])), ids=[c["name"] for c in CASES["cases"]])
def test_case_through_the_async_client(node, n):
    async def main():
        async with await meridian.AsyncClient.connect(node, resolver_timeout=TIMEOUT, timeout=20) as client:
            await run_case(client, n, CASES["cases"][n], async_resolvers(), unique(), True)

    asyncio.run(main())
