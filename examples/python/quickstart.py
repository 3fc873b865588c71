"""The README's Python section, run by the test command against `meridian dev`."""

from __future__ import annotations

import asyncio
import os

endpoint = os.environ.get("MERIDIAN_DC1", "http://127.0.0.11:7070")

# [start connect]
import meridian

client = meridian.Client(endpoint, timeout=5.0)  # or a list of endpoints
# [end connect]

# [start readwrite]
written = client.put("demo", "cart:1", b"apples")                   # no context: a blind write
read = client.get("demo", "cart:1", consistency="LOCAL_QUORUM")
print(read.siblings, read.value)                                   # [b'apples'] b'apples'
client.put("demo", "cart:1", b"apples,pears", read.context)        # replaces what the read saw
client.delete("demo", "cart:1", client.get("demo", "cart:1").context)
# [end readwrite]
assert not client.get("demo", "cart:1").found

# Start clean, so that the blind writes below make exactly two siblings on every run.
client.delete("demo", "cart:2")

# [start resolve]
def union(siblings: list[bytes]) -> bytes:
    return b",".join(sorted(set(b",".join(siblings).split(b","))))

carts = client.keyspace("demo", resolver=union)                   # registered for the keyspace
carts.put("cart:2", b"apples")
carts.put("cart:2", b"pears")                                      # two blind writes: siblings
print(carts.get_resolved("cart:2"))                                # b'apples,pears', written back
carts.update("cart:2", lambda cart: (cart or b"") + b",plums")     # read, resolve, change, write
# [end resolve]
assert carts.get("cart:2").value == b"apples,pears,plums"

# [start errors]
try:
    client.get("no-such-keyspace", "k")
except meridian.NotFound as e:
    print(e.code)                                                  # NOT_FOUND
try:
    client.put("demo", "k", b"x" * 20_000)
except meridian.InvalidArgument as e:
    print(e.code, e)                                               # INVALID_ARGUMENT ... limit
client.close()
# [end errors]

# [start asyncio]
async def main() -> None:
    async with await meridian.AsyncClient.connect(endpoint) as client:
        read = await client.get("demo", "cart:3")
        await client.put("demo", "cart:3", b"apples", read.context)
        print(await client.get_resolved("demo", "cart:3", union))

asyncio.run(main())
# [end asyncio]
