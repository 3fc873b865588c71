"""A shopping cart edited in two datacenters at once.

Both datacenters change the cart from the same version without seeing each other's change,
so the cart gets two siblings. The application's resolver merges them: every item added
anywhere stays, and every removal is honoured, because each addition carries a tag and a
removal deletes the tags it saw (an observed-remove set).

Run `meridian dev`, then `python examples/python/cart.py`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Callable

import meridian

Cart = dict[str, list[str]]  # item -> tags of the additions not yet removed


def load(value: bytes) -> tuple[Cart, set[str]]:
    doc = json.loads(value)
    return doc["items"], set(doc["removed"])


def dump(items: Cart, removed: set[str]) -> bytes:
    return json.dumps({"items": items, "removed": sorted(removed)}, sort_keys=True).encode()


# [start resolver]
def merge_carts(siblings: list[bytes]) -> bytes:
    """Union of additions, minus every tag some sibling removed."""
    items: Cart = {}
    removed: set[str] = set()
    for sibling in siblings:
        their_items, their_removed = load(sibling)
        removed |= their_removed
        for item, tags in their_items.items():
            items[item] = sorted(set(items.get(item, [])) | set(tags))
    live = {item: [t for t in tags if t not in removed] for item, tags in items.items()}
    return dump({item: tags for item, tags in live.items() if tags}, removed)
# [end resolver]


def add(item: str) -> Callable[[bytes | None], bytes]:
    def change(current: bytes | None) -> bytes:
        items, removed = load(current) if current else ({}, set())
        items.setdefault(item, []).append(uuid.uuid4().hex)
        return dump(items, removed)

    return change


def remove(item: str) -> Callable[[bytes | None], bytes]:
    def change(current: bytes | None) -> bytes:
        items, removed = load(current) if current else ({}, set())
        removed |= set(items.pop(item, []))
        return dump(items, removed)

    return change


def visible(value: bytes | None) -> list[str]:
    return sorted(load(value)[0]) if value else []


def wait_for(what: str, check: Callable[[], bool], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            sys.exit(f"cart example: {what} did not happen within {deadline:.0f} s")
        time.sleep(0.05)



def main() -> None:
    dc1_url = os.environ.get("MERIDIAN_DC1", "http://127.0.0.11:7070")
    dc2_url = os.environ.get("MERIDIAN_DC2", "http://127.0.0.21:7070")
    with meridian.Client(dc1_url, local_dc="dc1") as dc1, meridian.Client(dc2_url, local_dc="dc2") as dc2:
        dc1.create_keyspace("carts")
        carts1 = dc1.keyspace("carts", resolver=merge_carts, consistency="LOCAL_QUORUM")
        carts2 = dc2.keyspace("carts", resolver=merge_carts, consistency="LOCAL_QUORUM")
        cart = "cart:" + uuid.uuid4().hex

        carts1.update(cart, add("apples"))
        carts1.update(cart, add("bread"))
        wait_for("the cart reaching dc2", lambda: visible(carts2.get(cart).value) == ["apples", "bread"])

        # Both DCs edit the same version, each unaware of the other.
        base1, base2 = carts1.get(cart), carts2.get(cart)
        assert base1.value is not None and base2.value is not None
        carts1.put(cart, add("coffee")(remove("bread")(base1.value)), base1.context)
        carts2.put(cart, add("dates")(base2.value), base2.context)
        wait_for("both edits meeting in dc1", lambda: len(carts1.get(cart).siblings) == 2)
        print("siblings in dc1:", [visible(s) for s in sorted(carts1.get(cart).siblings)])

        merged = carts1.get_resolved(cart)
        print("merged cart:", visible(merged))
        expected = ["apples", "coffee", "dates"]
        if visible(merged) != expected:
            sys.exit(f"cart example: merged cart is {visible(merged)}, expected {expected}")
        wait_for("the merge reaching dc2", lambda: visible(carts2.get(cart).value) == expected)
        print("dc2 reads the merged cart: ok")


if __name__ == "__main__":
    main()
