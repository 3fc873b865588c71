"""The Python side of `scripts/bench-sdks.sh`: put and get ops/s with N concurrent callers on
one client (threads for `Client`, tasks for `AsyncClient`), then the latency of
`get_resolved` on a key with two siblings, one caller.

`python bench.py sync|async ENDPOINT SECONDS CALLERS RESOLVES`
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import meridian

VALUE = b"v" * 100
# Puts and gets go to a last-writer-wins keyspace (the script creates it), so blind puts do
# not pile up siblings that later gets would carry.
KEYSPACE = "bench-lww"


def first(siblings: list[bytes]) -> bytes:
    return siblings[0]


def pct(samples: list[float], p: float) -> float:
    samples = sorted(samples)
    return samples[int((len(samples) - 1) * p)]


def bench_sync(endpoint: str, seconds: float, callers: int, resolves: int) -> tuple[float, float, list[float], list[float]]:
    client = meridian.Client(endpoint)

    def rate(put: bool) -> float:
        counts = [0] * callers
        end = time.monotonic() + seconds

        def work(c: int) -> None:
            i = 0
            while time.monotonic() < end:
                key = f"bench-{c}-{i % 1000}"
                if put:
                    client.put(KEYSPACE, key, VALUE)
                else:
                    client.get(KEYSPACE, key)
                counts[c] += 1
                i += 1

        threads = [threading.Thread(target=work, args=(c,)) for c in range(callers)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.monotonic() - started)

    put, get = rate(True), rate(False)
    micros = []
    for i in range(resolves):
        key = f"resolve-{os.getpid()}-{i}"
        client.put("default", key, b"a")
        client.put("default", key, b"b")
        t = time.perf_counter()
        client.get_resolved("default", key, first)
        micros.append((time.perf_counter() - t) * 1e6)
    gets = []
    for i in range(resolves):
        t = time.perf_counter()
        client.get(KEYSPACE, f"bench-0-{i % 1000}")
        gets.append((time.perf_counter() - t) * 1e6)
    client.close()
    return put, get, micros, gets


async def bench_async(endpoint: str, seconds: float, callers: int, resolves: int) -> tuple[float, float, list[float], list[float]]:
    client = await meridian.AsyncClient.connect(endpoint)

    async def rate(put: bool) -> float:
        counts = [0] * callers
        end = time.monotonic() + seconds

        async def work(c: int) -> None:
            i = 0
            while time.monotonic() < end:
                key = f"bench-{c}-{i % 1000}"
                if put:
                    await client.put(KEYSPACE, key, VALUE)
                else:
                    await client.get(KEYSPACE, key)
                counts[c] += 1
                i += 1

        started = time.monotonic()
        await asyncio.gather(*(work(c) for c in range(callers)))
        return sum(counts) / (time.monotonic() - started)

    put = await rate(True)
    get = await rate(False)
    micros = []
    for i in range(resolves):
        key = f"resolve-a{os.getpid()}-{i}"
        await client.put("default", key, b"a")
        await client.put("default", key, b"b")
        t = time.perf_counter()
        await client.get_resolved("default", key, first)
        micros.append((time.perf_counter() - t) * 1e6)
    gets = []
    for i in range(resolves):
        t = time.perf_counter()
        await client.get(KEYSPACE, f"bench-0-{i % 1000}")
        gets.append((time.perf_counter() - t) * 1e6)
    await client.close()
    return put, get, micros, gets


def main() -> None:
    mode, endpoint = sys.argv[1], sys.argv[2]
    seconds, callers, resolves = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    if mode == "sync":
        put, get, micros, gets = bench_sync(endpoint, seconds, callers, resolves)
    else:
        put, get, micros, gets = asyncio.run(bench_async(endpoint, seconds, callers, resolves))
    print(
        f"sdk=python-{mode} callers={callers} put_ops={put:.0f} get_ops={get:.0f} get_p50_us={pct(gets, 0.5):.0f} "
        f"resolve_p50_us={pct(micros, 0.5):.0f} resolve_p99_us={pct(micros, 0.99):.0f}"
    )


if __name__ == "__main__":
    main()
