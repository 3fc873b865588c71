"""Real `meridian` processes for the tests: one node, a two-datacenter `meridian dev`
cluster, and two datacenters whose link goes through the tests' WAN proxy (which a test can
cut). Each waits for its own readiness line with a generous deadline and is stopped
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


def wan_proxy_bin() -> str:
    if os.environ.get("MERIDIAN_WAN_PROXY"):
        return os.environ["MERIDIAN_WAN_PROXY"]
    path = Path(meridian_bin()).parent / "examples" / "wan_proxy"
    if not path.exists():
        pytest.fail(f"no WAN proxy at {path}: cargo build -p meridian --example wan_proxy")
    return str(path)


class WanProxy(Process):
    """`server/node/examples/wan_proxy.rs`: one proxy per node; commands on stdin."""

    def __init__(self, ips, log_path):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [wan_proxy_bin(), *ips], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.addrs = {}
        for _ in ips:
            line, _ = self.wait_for(lambda l: l.startswith("proxy "), "a proxy's start")
            _, i, addr = line.split()
            self.addrs[int(i)] = addr

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        self.wait_for(lambda l: l == f"ok {line}", f"the proxy taking {line!r}")

    def stop(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        super().stop()


def members_ready(endpoint: str, count: int) -> bool:
    """`count` nodes up, owning partitions, and the layout settled (no older version still
    serving while data moves), as `meridian admin members` at `endpoint` shows."""
    r = subprocess.run([meridian_bin(), "admin", "members", "--endpoint", endpoint], capture_output=True, timeout=60)
    text = r.stdout.decode()
    rows = [l.split() for l in text.splitlines() if " up " in l]
    owning = all(len(w) > 5 and w[5].isdigit() and int(w[5]) > 0 for w in rows)
    return len(rows) == count and owning and "while data moves" not in text


@pytest.fixture(scope="session")
def wan_cluster():
    """A node in dc1 and one in dc2, each reached from the other DC through the WAN proxy;
    yields {"dc1": address, "dc2": address, "proxy": WanProxy} (`proxy.command("block")`
    cuts the link, "unblock" heals it)."""
    tmp = tempfile.mkdtemp(prefix="meridian-py-wan-")
    proxy = WanProxy(["127.0.9.101", "127.0.9.102"], f"{tmp}/proxy.log")
    nodes, out, seeds = [], {}, []
    for i, dc in ((1, "dc1"), (2, "dc2")):
        ip = f"127.0.9.{i}"
        args = [
            meridian_bin(), "server", "--data-dir", f"{tmp}/{dc}", "--dc", dc, "--rack", f"r{i}",
            "--grpc-addr", f"{ip}:0", "--http-addr", f"{ip}:0", "--gossip-addr", f"{ip}:0",
            "--wan-grpc-addr", proxy.addrs[i],
        ]
        if seeds:
            args += ["--seeds", seeds[0]]
        p = Process(args, f"{tmp}/{dc}.log")
        nodes.append(p)
        line, _ = p.wait_for(lambda l: l.startswith("MERIDIAN_READY"), f"the {dc} node's start")
        seeds.append(field(line, "gossip"))
        out[dc] = field(line, "grpc")
        proxy.command(f"target {i} {out[dc].removeprefix('http://')}")
    for dc in ("dc1", "dc2"):
        eventually(lambda: members_ready(out[dc], 2), f"{dc} seeing both nodes own partitions", START_DEADLINE)
    out["proxy"] = proxy
    yield out
    for p in nodes:
        p.stop()
    proxy.stop()
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
