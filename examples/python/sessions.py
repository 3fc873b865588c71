"""A session store: one value per session token, in a last-writer-wins keyspace, read and
written at LOCAL_QUORUM so each datacenter answers on its own.

Run `meridian dev`, then `python examples/python/sessions.py`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Callable

import meridian


def wait_for(what: str, check: Callable[[], bool], deadline: float = 60.0) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            sys.exit(f"sessions example: {what} did not happen within {deadline:.0f} s")
        time.sleep(0.05)



def main() -> None:
    dc1_url = os.environ.get("MERIDIAN_DC1", "http://127.0.0.11:7070")
    dc2_url = os.environ.get("MERIDIAN_DC2", "http://127.0.0.21:7070")
    with meridian.Client(dc1_url, local_dc="dc1") as dc1, meridian.Client(dc2_url, local_dc="dc2") as dc2:
        # [start sessions]
        dc1.create_keyspace(
            "sessions", kind="lww", read_consistency="LOCAL_QUORUM", write_consistency="LOCAL_QUORUM"
        )
        sessions = dc1.keyspace("sessions")
        token = uuid.uuid4().hex
        sessions.put(token, json.dumps({"user": "ada", "expires": time.time() + 3600}))
        # An lww keyspace never has siblings: the later write wins.
        sessions.put(token, json.dumps({"user": "ada", "expires": time.time() + 7200, "cart": 3}))
        session = sessions.get(token).value
        # [end sessions]
        assert session is not None
        print("dc1 session:", json.loads(session))
        if json.loads(session).get("cart") != 3:
            sys.exit("sessions example: the later write did not win")

        remote = dc2.keyspace("sessions")
        wait_for("the session reaching dc2", lambda: remote.get(token).siblings == [session])
        print("dc2 reads the same session: ok")

        sessions.delete(token)
        wait_for("the logout reaching dc2", lambda: not remote.get(token).found)
        print("logged out in dc1, gone in dc2: ok")


if __name__ == "__main__":
    main()
