"""Two datacenters (`meridian dev`, one node each): replication between them, and siblings
from concurrent writes in both, resolved by the application."""

import uuid

import meridian
from conftest import eventually


def test_a_write_in_one_dc_is_read_in_the_other(cluster):
    with meridian.Client(cluster["dc1"], local_dc="dc1", timeout=20) as dc1, meridian.Client(
        cluster["dc2"], local_dc="dc2", timeout=20
    ) as dc2:
        k = "greeting-" + uuid.uuid4().hex
        dc1.put("demo", k, b"hello", consistency="LOCAL_QUORUM")
        eventually(lambda: dc2.get("demo", k, consistency="LOCAL_ONE").value == b"hello", "replication to dc2")


def test_concurrent_writes_in_two_dcs_become_siblings_and_resolve(cluster):
    with meridian.Client(cluster["dc1"], local_dc="dc1", timeout=20) as dc1, meridian.Client(
        cluster["dc2"], local_dc="dc2", timeout=20
    ) as dc2:
        k = "cart-" + uuid.uuid4().hex
        dc1.put("demo", k, b"apples", consistency="LOCAL_QUORUM")
        eventually(lambda: dc2.get("demo", k).found, "the first write reaching dc2")
        seen = dc2.get("demo", k).context
        # Both DCs replace what they saw, without seeing each other.
        dc1.put("demo", k, b"apples,bread", dc1.get("demo", k).context, consistency="LOCAL_QUORUM")
        dc2.put("demo", k, b"apples,coffee", seen, consistency="LOCAL_QUORUM")
        eventually(lambda: len(dc1.get("demo", k).siblings) == 2, "siblings in dc1")
        merged = dc1.get_resolved(
            "demo", k, lambda s: b",".join(sorted(set(b",".join(s).split(b","))))
        )
        assert merged == b"apples,bread,coffee"
        eventually(lambda: dc2.get("demo", k).siblings == [merged], "the merge reaching dc2")
