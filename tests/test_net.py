"""labkit.net: the wire format, the disk, real processes, the nemesis, and etcd.

Real time is noisy, so the assertions here are about what must hold on any
run (linearizable, nothing acknowledged lost, nothing left running), never
about how fast something happened.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from labkit.net import ProcessCluster, WireError, registry_for
from labkit.net.codec import MAX_FRAME, FrameReader, frame
from labkit.net.messages import Hello, StatusReply, StatusRequest
from labkit.net.nemesis import Fault, check_run, lost_appends, random_schedule, run_nemesis
from labkit.net.procs import alive, port_is_free
from labkit.net.quorum import QuorumCluster
from labkit.net.storage import WAL_NAME, DiskStorage
from labkit.raft import (
    NOOP,
    AppendEntries,
    AppendEntriesReply,
    ClientReply,
    ClientRequest,
    KVCommand,
    LogEntry,
    RequestVote,
    RequestVoteReply,
)

RAFT = registry_for("raft")


# ---------------------------------------------------------------------------
# The wire
# ---------------------------------------------------------------------------
RAFT_MESSAGES = [
    RequestVote(3, "n1", 7, 2),
    RequestVoteReply(3, True),
    AppendEntries(
        4, "n2", 5, 3, (LogEntry(4, NOOP), LogEntry(4, KVCommand("c1", 9, ("append", "k", "v;")))), 5
    ),
    AppendEntriesReply(4, False, 4, 5, conflict_index=3, conflict_term=2),
    ClientRequest("c1", 2, ("put", "x", "é ☃")),
    ClientReply(2, True, "12", None),
    Hello("n3"),
    StatusRequest(1, True),
    StatusReply(1, "n1", 42, {"role": "leader", "data": {"x": "1"}}),
]


@pytest.mark.parametrize("msg", RAFT_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_raft_message_round_trips_exactly(msg):
    data = RAFT.encode(msg)
    (body,) = FrameReader().feed(data)
    back = RAFT.decode(body)
    assert back == msg and type(back) is type(msg)


def test_frames_split_anywhere_are_reassembled():
    data = b"".join(RAFT.encode(m) for m in RAFT_MESSAGES)
    r = FrameReader()
    got = []
    rng = random.Random(1)
    i = 0
    while i < len(data):
        j = i + rng.randint(1, 7)
        got += r.feed(data[i:j])
        i = j
    assert [RAFT.decode(b) for b in got] == RAFT_MESSAGES
    assert r.pending == 0


@pytest.mark.parametrize(
    "body, why",
    [
        (b"{not json", "not valid JSON"),
        (b'{"@": "Pickle", "f": []}', "unknown message type"),
        (b'{"role": "leader"}', "tagged message"),
        (b'{"@": "RequestVote", "f": [1, "n1"]}', "needs 5 fields"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[" * 100_000, "not valid JSON"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(body, why):
    with pytest.raises(WireError, match=why):
        RAFT.decode(body)


def test_an_oversize_frame_is_refused_before_it_is_read():
    r = FrameReader(limit=1000)
    with pytest.raises(WireError, match="exceeds"):
        r.feed((5000).to_bytes(4, "big") + b"x" * 10)


def test_the_registry_refuses_unregistered_types_when_encoding():
    class Secret:
        pass

    with pytest.raises(TypeError, match="not registered"):
        RAFT.encode(Secret())


def test_the_quorum_store_messages_travel_too():
    # The design carries labkit.replication's node as well: its messages round-trip.
    from labkit.clocks import VectorClock
    from labkit.replication import messages as qm
    from labkit.replication.versions import Dot, Versioned

    reg = registry_for("quorum")
    v = Versioned("val", Dot("n1", 3), VectorClock({"n1": 2, "n2": 1}), 1.5)
    msgs = [
        qm.ClientGet(1, "k", 2),
        qm.ClientPut(2, "k", "v", VectorClock({"n1": 1}), 2),
        qm.ClientReply(2, True, (v,), True, 3),
    ]
    for m in msgs:
        (body,) = FrameReader().feed(reg.encode(m))
        assert reg.decode(body) == m


def test_the_quorum_store_runs_as_processes_and_the_checker_judges_its_history():
    # The design carries labkit.replication's node end to end: processes, disks,
    # proxies, clients with recorded histories, and the same checker.
    from labkit.linearizability import KVModel, check
    from labkit.net.quorum import QuorumCluster

    with QuorumCluster(n=3, seed=6) as c:  # N = 3, R = W = 2, strict quorums, last writer wins
        for i in range(6):  # one operation at a time, through every coordinator
            assert c.put("x", f"v{i}", client=f"w{i % 3}").done
            assert c.get("x", client=f"r{(i + 1) % 3}").output == f"v{i}"
        c.crash("n1")  # two of three still make both quorums
        assert c.put("x", "during", client="w1").done
        c.restart("n1")
        assert c.wait_for_leader(10) is not None  # every server answers again
        # n1's disk kept what it acknowledged before the crash ...
        assert "'v5'" in c.status("n1", full=True)["data"]["x"]
        # ... and with R = 3 a read needs its answer too (the first try may time out while
        # the other servers reconnect to the restarted one: an unknown outcome, tried again).
        all3 = c.client("all", "n1", r=3)
        assert _acknowledged(lambda: c._run(all3.get("x")), 10).output == "during"
        assert check(c.operations(), KVModel()).ok is True
        # Quorums that do not overlap (R = W = 1) across a partition: the checker finds the stale read.
        c.partition(["n1"], ["n2", "n3"])
        assert c._run(c.client("w-one", "n2", w=1).put("x", "new")).done
        stale = c._run(c.client("r-one", "n1", r=1).get("x"))
        assert stale.done and stale.output == "during"
        assert check(c.operations(), KVModel()).ok is False
        with pytest.raises(ValueError, match="get and put only"):
            c.append("x", "1")
    assert _leftovers_after(c) == ([], [])


# ---------------------------------------------------------------------------
# The disk
# ---------------------------------------------------------------------------
def test_storage_survives_reopening_and_drops_a_torn_tail(tmp_path):
    s = DiskStorage(tmp_path, RAFT).open()
    s.write([("current_term", 3), (("log", 1), LogEntry(3, KVCommand("c", 1, ("put", "k", "v"))))])
    assert s.sync() and not s.sync()  # nothing new: no second fsync
    s.write([("voted_for", "n2")])
    s.sync()
    s.close()
    with open(tmp_path / WAL_NAME, "ab") as f:
        f.write(b'["log_length", 1')  # a crash in the middle of a write
    t = DiskStorage(tmp_path, RAFT).open()
    assert t.dropped_tail
    assert dict(t) == {
        "current_term": 3,
        ("log", 1): LogEntry(3, KVCommand("c", 1, ("put", "k", "v"))),
        "voted_for": "n2",
    }
    t.close()
    # Reopening compacted the file: one line per key, the torn line gone.
    assert len((tmp_path / WAL_NAME).read_bytes().splitlines()) == 3


def test_storage_refuses_a_corrupt_record(tmp_path):
    (tmp_path / WAL_NAME).write_bytes(b'{"@": "os.system", "f": ["rm"]}\n')
    with pytest.raises(ValueError, match="unreadable record"):
        DiskStorage(tmp_path, RAFT).open()


# ---------------------------------------------------------------------------
# Real processes
# ---------------------------------------------------------------------------
def _leftovers_after(c):
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pids, ports = c.leftovers()
        if not pids and not ports:
            return [], []
        time.sleep(0.1)
    return c.leftovers()


def test_a_cluster_serves_survives_a_stray_client_and_leaves_nothing_behind():
    with ProcessCluster(n=3, seed=1) as c:
        leader = c.leader()
        assert leader in c.ids
        assert c.put("x", "1").output is None
        assert c.append("x", "2").done
        assert c.get("x").output == "12"
        pids = c.all_pids()
        assert len(pids) == 4 and all(alive(p) for p in pids)  # 3 servers and the reaper
        port = c.ports[leader]
        garbage = [
            (5 << 20).to_bytes(4, "big") + b"x" * 100,  # oversize
            frame(b"{definitely not json"),  # malformed
            frame(RAFT.encode(Hello("stray"))[4:]) + frame(b'{"@": "Shutdown", "f": []}'),  # unknown type
            frame(b'{"@": "os.system", "f": ["echo hi"]}'),  # no Hello first, and not ours anyway
        ]
        for g in garbage:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(g)
                s.settimeout(2)
                assert s.recv(100) == b""  # the node closed the connection
        time.sleep(0.2)
        log = c.log_text(leader)
        assert log.count("refused connection") == len(garbage), log[-2000:]
        assert "exceeds" in log and "not valid JSON" in log and "unknown message type 'Shutdown'" in log
        assert c.status(leader)["refused"] == len(garbage)
        assert c.get("x").output == "12"  # still serving
        assert MAX_FRAME < 5 << 20
    assert _leftovers_after(c) == ([], [])
    assert not any(alive(p) for p in pids)


def test_acknowledged_writes_survive_crashing_every_server_and_forgetful_servers_lose_them():
    for durable in (True, False):
        with ProcessCluster(n=3, seed=2, durable=durable) as c:
            acked = [c.append("k", f"v{i};") for i in range(20)]
            assert all(r.done for r in acked)
            for nid in c.ids:
                c.crash(nid)
            for nid in c.ids:
                c.restart(nid)
            assert c.wait_for_leader(15) is not None
            final = c.final_reads(["k"], 10)
            lost = lost_appends(c.history, final)
            if durable:
                assert final["k"] == "".join(f"v{i};" for i in range(20))
                assert lost == []
            else:  # the planted bug: the check must catch it
                assert len(lost) == 20, final


def _grab(port: int) -> str | None:
    """Try to take ``port`` as another program would (SO_REUSEADDR, then listen, as asyncio's
    servers and etcd do); close it again. The error name, or None if the port was taken."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e))
    finally:
        s.close()
    return None


@pytest.mark.parametrize("cls", [ProcessCluster, QuorumCluster], ids=["raft", "quorum"])
def test_a_crashed_servers_port_stays_reserved_until_it_restarts(cls):
    """Between a crash and the restart nothing else can take the server's port (another test
    worker or proxy took it once: 'Address already in use' at the restart), and a client
    that connects meanwhile is refused at once rather than left waiting."""
    with cls(n=3, seed=5, nemesis=False) as c:
        nid = c.ids[-1]  # not the quorum clients' coordinator: its first write after a restart may time out
        c.crash(nid)
        port = c.ports[nid]
        assert _grab(port) == "EADDRINUSE"  # taken by its cluster, even with SO_REUSEADDR
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        c.restart(nid)
        deadline = time.monotonic() + 10
        while c.status(nid) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert c.status(nid) is not None
        c.crash(nid)  # and again, for the second incarnation
        assert _grab(port) == "EADDRINUSE"
        c.restart(nid)
        assert c.wait_for_leader(10) is not None and c.put("x", "1").done
    assert _leftovers_after(c) == ([], [])
    assert _grab(port) is None  # closing the cluster gives the port back


def test_a_paused_leader_is_replaced_and_catches_up_after_resume():
    with ProcessCluster(n=3, seed=3) as c:
        old = c.leader()
        c.put("x", "before")
        c.pause(old)
        assert c.status(old) is None
        new = c.wait_for_leader(10)
        assert new not in (None, old)
        assert c.put("x", "during").done
        c.resume(old)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = c.status(old)
            if s and s["role"] == "follower" and s["last_applied"] >= c.status(new)["last_applied"]:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"{old} did not catch up: {c.statuses()}")


def test_a_one_way_cut_from_the_leader_forces_an_election_and_no_wrong_answer():
    with ProcessCluster(n=3, seed=4) as c:
        old = c.leader()
        for nid in c.ids:
            if nid != old:
                c.cut(old, nid)  # the leader can hear, but nobody hears it
        new = c.wait_for_leader(10)
        deadline = time.monotonic() + 10
        while new == old and time.monotonic() < deadline:
            time.sleep(0.1)
            new = c.leader()
        assert new != old
        c.heal()
        assert c.put("y", "1").done and c.get("y").output == "1"


def _etcd_cluster(**kwargs):
    from labkit.net.etcd import EtcdCluster

    _need_etcd()
    return EtcdCluster(**kwargs)


def _wait_until(cond, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.1)
    return cond()


@pytest.mark.parametrize("kind", ["raft", "etcd"])
def test_no_server_outlives_a_killed_controller(kind):
    if kind == "etcd":
        _need_etcd()
    start = "ProcessCluster(n=3)" if kind == "raft" else "EtcdCluster(n=3)"
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from labkit.net import ProcessCluster
        from labkit.net.etcd import EtcdCluster
        c = {start}.start()
        print(json.dumps({{"pids": c.all_pids(), "ports": sorted(c.used_ports), "folder": str(c.folder)}}), flush=True)
        time.sleep(60)
        """
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        info = json.loads(line)
        assert all(alive(pid) for pid in info["pids"])
        os.kill(p.pid, signal.SIGKILL)  # as when a notebook kernel is killed
        p.wait(5)
        assert _wait_until(lambda: not any(alive(pid) for pid in info["pids"]), 5)
        assert all(port_is_free(port) for port in info["ports"])
        assert _wait_until(lambda: not os.path.exists(info["folder"]), 5), (
            "the reaper removes the temporary folder"
        )
    finally:
        if p.poll() is None:
            p.kill()


@pytest.mark.parametrize(
    "kind, sig", [("raft", signal.SIGTERM), ("raft", signal.SIGINT), ("etcd", signal.SIGTERM)], ids=str
)
def test_a_stopped_reaper_takes_the_servers_down_with_it(kind, sig):
    """A pkill of the session may reach the reaper before the servers (an etcd member's command
    line does not even name labkit): it kills them on its way out instead of leaving them running
    with no one to stop them. One server is dead already; the controller's close is fine after."""
    c = ProcessCluster(n=3, seed=6) if kind == "raft" else _etcd_cluster(n=3)
    with c:
        c.crash(c.ids[0])
        servers = [c.procs[nid].pid for nid in c.ids[1:]]
        assert all(alive(pid) for pid in servers)
        os.kill(c._reaper.pid, sig)
        assert _wait_until(lambda: not any(alive(pid) for pid in servers)), (
            "the servers outlived their reaper"
        )
        assert _wait_until(lambda: not c.folder.exists()), "the reaper removes the temporary folder"
        assert c.statuses() == dict.fromkeys(c.ids)
    assert _leftovers_after(c) == ([], [])


def test_a_clean_close_dismisses_the_reaper():
    """close() stops the servers itself, then tells the reaper so (SIGUSR1: it exits with 0, not
    killed by close())."""
    with ProcessCluster(n=3, seed=7, nemesis=False) as c:
        c.crash(c.ids[1])  # a server already dead is fine
        reaper = c._reaper
    assert reaper.returncode == 0
    assert _leftovers_after(c) == ([], [])


def test_the_reaper_handles_signals_as_soon_as_it_is_started(tmp_path):
    """start_reaper returns once the reaper handles SIGTERM: terminated at once, it still cleans up."""
    from labkit.net.procs import start_reaper

    folder = tmp_path / "cluster"
    folder.mkdir()
    reaper = start_reaper(folder=folder)
    reaper.terminate()
    reaper.wait(10)
    assert reaper.returncode == -signal.SIGKILL  # it killed its own group, itself last
    assert not folder.exists()


# ---------------------------------------------------------------------------
# The client's retry policy, against scripted servers
# ---------------------------------------------------------------------------
async def _scripted_servers(behaviour, asked: list[str]):
    """One asyncio server per name on 127.0.0.1 speaking our protocol; ``behaviour(name, n)`` says what
    server ``name`` does with its ``n``-th request: a ClientReply, "silent" (keep the connection, answer
    nothing: frozen or cut off) or "hang up" (close the connection: crashed behind its proxy)."""
    servers, addresses, counts = [], {}, {}

    def handler(name):
        async def handle(reader, writer):
            frames = FrameReader()
            try:
                while data := await reader.read(65536):
                    for body in frames.feed(data):
                        msg = RAFT.decode(body)
                        if type(msg) is not ClientRequest:
                            continue
                        asked.append(name)
                        counts[name] = counts.get(name, 0) + 1
                        what = behaviour(name, counts[name])
                        if what == "hang up":
                            writer.close()
                            return
                        if what != "silent":
                            writer.write(RAFT.encode(ClientReply(msg.seq, *what)))
            except ConnectionError:
                pass
            finally:
                writer.close()

        return handle

    for name in ("n1", "n2", "n3"):
        srv = await asyncio.start_server(handler(name), "127.0.0.1", 0)
        servers.append(srv)
        addresses[name] = srv.sockets[0].getsockname()[:2]
    return servers, addresses


def _run_client_against(behaviour, attempt_timeout: float, timeout: float = 5.0):
    from labkit.net.client import RaftClient

    asked: list[str] = []

    async def main():
        servers, addresses = await _scripted_servers(behaviour, asked)
        client = RaftClient(
            "c", addresses, RAFT, timeout=timeout, attempt_timeout=attempt_timeout, backoff=0.005
        )
        try:
            t0 = time.monotonic()
            rec = await client.put("x", "1")
            return rec, time.monotonic() - t0
        finally:
            client.close()
            for srv in servers:
                srv.close()

    rec, took = asyncio.run(main())
    return rec, took, asked


def test_a_client_asks_every_other_server_before_going_back_to_one_that_went_silent():
    """The leader n1 froze; until an election ends, n2 and n3 still name it. A client that
    trusted every hint would go n1, n2, n1, n2, ... waiting out attempt_timeout at n1 each time."""

    def behaviour(name, n):
        if name == "n1":
            return "silent"
        if name == "n2" and n >= 3:  # n2 has won the election
            return (True, None, None)
        return (False, None, "n1")  # "not the leader; n1 is"

    rec, took, asked = _run_client_against(behaviour, attempt_timeout=0.5)
    assert rec.done and rec.served_by == "n2", (rec, asked)
    assert asked == ["n1", "n2", "n3", "n1", "n2", "n3", "n1", "n2"], asked
    # A new leader that was slow to answer once (n2, busy with its election) is suspect too; once
    # the one other server that answers names it, the client goes back to it, not to the frozen n1.
    rec, took, asked = _run_client_against(
        lambda name, n: {"n1": "silent", "n2": "silent" if n == 1 else (True, None, None)}.get(
            name, (False, None, "n2")
        ),
        attempt_timeout=0.5,
    )
    assert rec.done and asked == ["n1", "n2", "n3", "n2"], (rec, asked)
    # a hint naming a server that answers is followed at once
    rec, took, asked = _run_client_against(
        lambda name, n: (True, None, None) if name == "n3" else (False, None, "n3"), attempt_timeout=0.3
    )
    assert asked == ["n1", "n3"], asked


def test_a_lost_connection_ends_an_attempt_at_once():
    """A crashed leader behind its proxy: the proxy takes the connection, then closes it. No answer
    can come any more, so the client moves on at once instead of waiting out attempt_timeout."""
    rec, took, asked = _run_client_against(
        lambda name, n: "hang up" if name == "n1" else (True, None, None), attempt_timeout=3.0
    )
    assert rec.done and rec.served_by == "n2" and asked == ["n1", "n2"], (rec, asked)
    assert took < 1.0, f"waited {took:.2f} s for a server whose connection was gone"


def test_the_cluster_gives_its_clients_the_attempt_timeout():
    """Notebook 13's clients use the learner's timeout (cluster.attempt_timeout), set before they are made."""
    c = ProcessCluster(n=3)
    c._client_addr = {nid: ("127.0.0.1", 1) for nid in c.ids}  # no processes needed to make a client
    c.attempt_timeout = 0.123
    assert c.client("a").attempt_timeout == 0.123
    with pytest.raises(ValueError, match="attempt_timeout"):
        c.attempt_timeout = 0  # refused where it is set, not later inside a run


# ---------------------------------------------------------------------------
# The nemesis
# ---------------------------------------------------------------------------
def test_random_schedules_undo_every_fault_they_inject():
    for seed in range(20):
        sched = random_schedule(random.Random(seed), duration=10, n=3)
        assert sum(f.delay for f in sched) <= 10
        down: set = set()
        for f in sched:
            if f.kind in ("crash", "pause"):
                down.add(f.arg)
            elif f.kind in ("restart", "resume"):
                down.discard(f.arg)
        assert not down


def test_fault_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="kind must be one of"):
        Fault(1.0, "meteor")
    with pytest.raises(ValueError, match="delay"):
        Fault(-1.0, "heal")


def _nemesis_run(seed: int, duration: float = 10.0, max_inflight: int = 1):
    with ProcessCluster(n=3, seed=seed, max_inflight=max_inflight) as c:
        sched = random_schedule(random.Random(seed), duration=duration, n=3)
        run = run_nemesis(c, sched, seed=seed, clients=4)
        check_run(run)
        assert run.counts()["ok"] > 100
        assert all(v is not None for v in run.final.values())
    assert _leftovers_after(c) == ([], [])
    return run


@pytest.mark.parametrize("seed, max_inflight", [(101, 1), (102, 4)])
def test_nemesis_run_is_linearizable_and_loses_nothing(seed, max_inflight):
    # The second run streams up to 4 AppendEntries per follower (labkit.raft.progress).
    _nemesis_run(seed, max_inflight=max_inflight)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000, 1050))
def test_nemesis_runs_50(seed):
    _nemesis_run(seed, max_inflight=1 if seed % 2 else 4)  # half of them with a window


def test_the_checker_catches_a_stale_history_from_real_processes():
    # Plant a bug in a real run's record: a read that answers an old value.
    with ProcessCluster(n=3, seed=5) as c:
        run = run_nemesis(c, [Fault(0.5, "heal")], seed=5, clients=2, kinds=("get", "append"), check=False)
    done_reads = [r for r in run.history if r.input[0] == "get" and r.done and r.output]
    victim = done_reads[-1]
    victim.output = ""  # as if it read before every append
    check_run(run, raise_error=False)
    assert run.result.ok is False


# ---------------------------------------------------------------------------
# etcd
# ---------------------------------------------------------------------------
def _need_etcd():
    from labkit.net.etcd import etcd_available

    ok, why = etcd_available()
    if not ok:
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)


def test_etcd_available_names_the_missing_python_client(monkeypatch):
    import sys

    from labkit.net import etcd

    if etcd.etcd_binary() is None:
        pytest.skip("no etcd server program here")
    monkeypatch.setitem(sys.modules, "aetcd", None)  # import aetcd now raises ImportError
    ok, why = etcd.etcd_available()
    assert ok is False
    assert "pip install aetcd" in why and "is installed" in why, why


def _read_mode_runs(runs: int):
    from labkit.net.etcd import EtcdCluster, read_mode_run, stale_reads

    _need_etcd()
    with EtcdCluster(n=3) as c:
        for seed in range(runs):
            lin = read_mode_run(c, serializable=False, seed=seed)
            ser = read_mode_run(c, serializable=True, seed=seed)
            assert lin.result.ok is True, lin.summary()
            assert ser.result.ok is False, ser.summary()
            isolated = ser.events[0][2][0][0]
            assert stale_reads(ser.history)[isolated] > 0
            assert stale_reads(lin.history) == dict.fromkeys(c.ids, 0)
    assert _leftovers_after(c) == ([], [])


def test_etcd_linearizable_reads_pass_and_serializable_reads_are_caught_stale():
    # Over 2 runs of each mode here, 10 in the slow suite: every run must go this way.
    _read_mode_runs(2)


@pytest.mark.slow
def test_etcd_read_modes_10_runs():
    _read_mode_runs(10)


def _acknowledged(op, seconds: float):
    """Run ``op`` (a put or a get) until it is acknowledged; its record (done or not) after ``seconds``.

    On a loaded machine one attempt may time out (a client's first connection,
    a member that has just restarted): that is an unknown outcome, not a
    failure of the cluster, so the test tries again rather than assert on it.
    """
    deadline = time.monotonic() + seconds
    while True:
        r = op()
        if r.done or time.monotonic() >= deadline:
            return r
        time.sleep(0.1)


def test_etcd_cluster_survives_a_killed_leader_and_leaves_nothing():
    from labkit.net.etcd import EtcdCluster

    _need_etcd()
    with EtcdCluster(n=3) as c:
        assert _acknowledged(lambda: c.put("x", "1"), 15).done
        old = c.leader()
        assert old is not None
        c.crash(old)
        new = c.wait_for_leader(15)
        assert new not in (None, old)
        c.restart(old)
        # The old leader comes back as a follower of the new term.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            s = c.statuses().get(old)
            if s is not None and s["role"] == "follower" and s["leader"] not in (None, old):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"{old} did not rejoin: {c.statuses()}")
        # The acknowledged write survived, read (linearizably) on every member, the old leader too.
        for m in c.ids:
            r = _acknowledged(lambda m=m: c._run(c.client(f"reader-{m}", member=m).get("x")), 15)
            assert r.done and r.output == "1", (m, r)
        pids = c.all_pids()
    assert _leftovers_after(c) == ([], [])
    assert not any(alive(p) for p in pids)


def _plain_bind(port: int) -> str | None:
    """Bind ``port`` without SO_REUSEADDR (as a port picked by the kernel would be); the error name or None."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e))
    return None


@pytest.mark.parametrize("share", [socket.SO_REUSEPORT, socket.SO_REUSEADDR], ids=["reuseport", "reuseaddr"])
def test_a_held_port_is_handed_to_no_one_but_its_server(share):
    """hold_port keeps a port from plain binds (as the kernel hands ports out) and lets in only a
    listener that sets the same option: our nodes (SO_REUSEPORT), etcd (SO_REUSEADDR, as Go does)."""
    from labkit.net.procs import hold_port

    keeper = hold_port(share)
    try:
        port = keeper.getsockname()[1]
        assert _plain_bind(port) == "EADDRINUSE"
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, share, 1)
            server.bind(("127.0.0.1", port))
            server.listen(1)
            with socket.create_connection(("127.0.0.1", port), timeout=2):
                pass  # the listener gets the connection, not the keeper
    finally:
        keeper.close()
    assert _plain_bind(port) is None


def test_a_restarted_etcd_member_keeps_its_urls_and_refuses_a_taken_port():
    """The other members and the clients know a member by its peer and client URLs: a restart
    comes back on the same ports, rejoins, and serves the clients it had; if a program took one of
    its ports while it was down, the restart says so (it used to start an etcd that died at once)."""
    with _etcd_cluster(n=3) as c:
        assert _acknowledged(lambda: c.put("x", "1"), 15).done
        m = next(x for x in c.ids if x != c.leader())
        reader = c.client("reader", member=m)
        assert _acknowledged(lambda: c._run(reader.get("x")), 15).output == "1"
        urls = (c.client_ports[m], c.peer_ports[m], c.peer_urls[m], c.client_addr[m])
        c.crash(m)
        assert _acknowledged(lambda: c.put("x", "2", client="w"), 15).done
        c.restart(m)
        assert (c.client_ports[m], c.peer_ports[m], c.peer_urls[m], c.client_addr[m]) == urls
        assert _wait_until(lambda: (c.statuses()[m] or {}).get("leader") not in (None, m), 20), c.statuses()
        assert (
            _acknowledged(lambda: c._run(reader.get("x")), 15).output == "2"
        )  # the same client, reconnected
        c.crash(m)
        thief = socket.socket()
        thief.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        thief.bind(("127.0.0.1", c.client_ports[m]))  # SO_REUSEADDR and listen: what no keeper can stop
        thief.listen(1)
        try:
            with pytest.raises(
                RuntimeError, match=rf"cannot restart {m}: its client port .*{urls[0]} was taken"
            ):
                c.restart(m)
            assert not c.is_up(m)
        finally:
            thief.close()
        c.restart(m)
        assert _wait_until(lambda: c.statuses()[m] is not None, 20)
    assert _leftovers_after(c) == ([], [])


# ---------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------
def test_percentile_is_nearest_rank_and_refuses_nonsense():
    from labkit.viz.net import percentile

    assert percentile([3, 1, 2], 0.5) == 2
    assert percentile(list(range(1, 101)), 0.99) == 99
    with pytest.raises(ValueError, match="empty"):
        percentile([], 0.5)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1], 0)


def test_run_timeline_draws_every_kind_and_every_fault():
    from labkit.history import HistoryEntry
    from labkit.net.nemesis import NemesisRun
    from labkit.viz.net import latency_figure, run_timeline

    hist = [
        HistoryEntry("a", ("put", "k", "1"), 0.0, 0.01, None),
        HistoryEntry("a", ("get", "k"), 0.02, 0.03, "1"),
        HistoryEntry("b", ("append", "k", "2"), 0.5, gave_up=1.5),  # unknown
    ]
    run = NemesisRun(history=hist, events=[(0.4, "crash", "n1"), (1.0, "heal", None)], schedule=[])
    fig = run_timeline(run)
    names = {t.name for t in fig.data}
    assert names == {"get ok", "put ok", "unknown outcome"}
    unknown = next(t for t in fig.data if t.name == "unknown outcome")
    assert sum(unknown.y) * 0.2 == pytest.approx(1), "the give-up is counted once, in its bin"
    assert [a.text for a in fig.layout.annotations] == ["crash n1", "heal"]
    assert all(a.bgcolor for a in fig.layout.annotations), (
        "fault labels need a background to be read over bars"
    )
    assert "2 operations completed, 1 unknown" in fig.layout.title.text
    assert len(latency_figure([0.001, 0.002, 0.010]).layout.annotations) == 2


def test_bad_settings_are_refused_before_anything_starts():
    from labkit.net.etcd import EtcdCluster
    from labkit.net.proxy import Network

    with pytest.raises(ValueError, match="n"):
        ProcessCluster(n=0)
    with pytest.raises(TypeError, match="nemesis"):
        ProcessCluster(nemesis="yes")
    with pytest.raises(ValueError, match="heartbeat_interval"):
        ProcessCluster(election_timeout=(0.05, 0.1), heartbeat_interval=0.2)
    with pytest.raises(ValueError, match="client_timeout"):
        ProcessCluster(client_timeout=0)
    with pytest.raises(ValueError, match="election_timeout"):
        EtcdCluster(heartbeat=0.2, election_timeout=0.5)
    net = Network()
    with pytest.raises(ValueError, match="loss"):
        net.set_loss(1.5)
    with pytest.raises(ValueError, match="delay"):
        net.set_delay(-1)
    with pytest.raises(RuntimeError, match="not running"):
        ProcessCluster().put("x", "1")


@pytest.mark.parametrize(
    "groups, error, message",
    [
        ((), ValueError, "partition needs at least one group of node ids"),
        (("n1",), TypeError, "each group must be a list of node ids, got the string 'n1'; write ['n1']"),
        ((["n1"], []), ValueError, "group 1 is empty; every group needs at least one node"),
        (
            (["n1", "n2"], ["n2"]),
            ValueError,
            "node 'n2' is in group 0 and group 1; a node can be on one side of a partition only",
        ),
    ],
)
def test_simulated_and_real_clusters_refuse_the_same_partitions_alike(groups, error, message):
    from labkit.raft import RaftCluster
    from labkit.replication import ReplicatedStore

    sim_cluster, real_cluster = RaftCluster(n=3, seed=0), ProcessCluster(n=3, nemesis=True)
    with pytest.raises(error) as simulated:
        sim_cluster.partition(*groups)
    with pytest.raises(error) as real:
        real_cluster.partition(*groups)
    with pytest.raises(error) as quorum_store:
        ReplicatedStore(3, 3).partition(*groups)
    assert str(simulated.value) == str(real.value) == str(quorum_store.value) == message
    assert sim_cluster.partitions == [list(sim_cluster.ids)], "a refused partition changes nothing"
