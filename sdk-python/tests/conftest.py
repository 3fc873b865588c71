"""Real `meridian` processes for the tests: one node, and a two-datacenter `meridian dev`
cluster. Each waits for its own readiness line with a generous deadline and is stopped
(SIGTERM, then SIGKILL) when the session ends."""

import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

START_DEADLINE = 90.0


def meridian_bin() -> str:
    if os.environ.get("MERIDIAN_BIN"):
        return os.environ["MERIDIAN_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/meridian-target"))
    path = Path(target) / "debug" / "meridian"
    if not path.exists():
        pytest.fail(f"no meridian binary at {path}: build it (cargo build) or set MERIDIAN_BIN")
    return str(path)


class Process:
    """A child process whose stdout lines are read on a thread, so waiting for one has a
    deadline."""

    def __init__(self, args, log_path):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=self.log, env={**os.environ, "RUST_LOG": "error"}
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode(errors="replace").rstrip("\n"))

    def wait_for(self, predicate, what):
        deadline = time.monotonic() + START_DEADLINE
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            seen.append(line)
            if predicate(line):
                return line, seen
        self.stop()
        raise RuntimeError(f"{what} did not happen within {START_DEADLINE}s; output: {seen}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def field(line: str, name: str) -> str:
    for word in line.split():
        if word.startswith(name + "="):
            return word[len(name) + 1 :]
    raise KeyError(name)


@pytest.fixture(scope="session")
def node():
    """One node on free ports; yields its gRPC address."""
    tmp = tempfile.mkdtemp(prefix="meridian-py-")
    p = Process(
        [
            meridian_bin(), "server", "--data-dir", f"{tmp}/data",
            "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0",
        ],
        f"{tmp}/node.log",
    )
    line, _ = p.wait_for(lambda l: l.startswith("MERIDIAN_READY"), "the node's start")
    yield field(line, "grpc")
    p.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def free_dev_port() -> int:
    """A port free on every address `meridian dev --nodes-per-dc 1` binds (gRPC, +10, +20)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 20 > 65535:
            continue
        try:
            for ip in ("127.0.0.11", "127.0.0.21"):
                for p in (port, port + 10, port + 20):
                    with socket.socket() as s:
                        s.bind((ip, p))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port for the dev cluster")


@pytest.fixture(scope="session")
def cluster():
    """`meridian dev` with one node in each of dc1 and dc2; yields {dc: gRPC address}."""
    tmp = tempfile.mkdtemp(prefix="meridian-py-dev-")
    port = free_dev_port()
    p = Process(
        [meridian_bin(), "dev", "--data-dir", f"{tmp}/dev", "--port", str(port), "--nodes-per-dc", "1"],
        f"{tmp}/dev.log",
    )
    _, banner = p.wait_for(lambda l: "Ctrl-C stops" in l, "the dev cluster's start")
    endpoints = {}
    for line in banner:
        words = line.split()
        if len(words) >= 4 and words[1] in ("dc1", "dc2"):
            endpoints[words[1]] = words[3]
    assert set(endpoints) == {"dc1", "dc2"}, banner
    yield endpoints
    p.stop()
    shutil.rmtree(tmp, ignore_errors=True)


def eventually(check, what, deadline=60.0):
    """Polls `check` until it returns a true value; fails naming `what` at the deadline."""
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {deadline}s (last: {last!r})")
