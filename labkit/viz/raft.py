"""Pictures and widgets for Raft (notebooks 07, 08 and 10).

:func:`role_timeline` draws each server's role over time, the view Figure 5 of
the Raft paper sketches; :func:`log_grid` draws every server's log coloured by
term with its commit index, the view of Figures 6 and 7 (and §7's snapshots).
:func:`election_widget` and :class:`LogExplorer` put them under controls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labkit import validation as valid
from labkit.raft import NOOP, Configuration, KVCommand, RaftCluster, RaftLog, Role
from labkit.raft.snapshot import load_log
from labkit.sim import Kind, Simulator
from labkit.viz.common import (
    MAX_RUN,
    PALETTE,
    Widget,
    add_point,
    button,
    check_figure,
    check_title,
    dropdown,
    marks,
    new_figure,
    point_columns,
    replace_traces,
    status_html,
    style_figure,
    toggles,
    vline,
)

__all__ = [
    "ROLE_COLORS",
    "log_growth_figure",
    "role_segments",
    "role_timeline",
    "election_widget",
    "election_summary",
    "log_grid",
    "LogExplorer",
    "message_table",
    "history_table",
]

SIDE_NAMES = "ABCDEFGHIJKLMNO"  # sides of a partition, in the order RaftCluster.partitions lists them
MAX_EXPLORER_SERVERS = 9  # the log explorer draws at most this many rows

ROLE_COLORS = {"follower": "#BBBBBB", "candidate": "#E69F00", "leader": "#0072B2", "crashed": "#000000"}
# Membership states (diss. ch. 4), drawn only when some server was in one.
MEMBER_COLORS = {"learner": "#88CCEE", "removed": "#FFFFFF"}


def _sim_of(source: RaftCluster | Simulator) -> Simulator:
    if isinstance(source, RaftCluster):
        return source.sim
    if isinstance(source, Simulator):
        return source
    raise TypeError(f"expected a RaftCluster or a Simulator, got {type(source).__name__}")


def _membership_changes(source: RaftCluster | Simulator) -> tuple[set[str], dict[str, float]]:
    """(servers started after the first ones, which join as learners; when each removed server
    retired): a cluster's membership changes (diss. ch. 4). A bare simulator has none."""
    if not isinstance(source, RaftCluster):
        return set(), {}
    started = {nid for _, what, nid in source.events if what == "start"}
    return started, {nid: t for t, what, nid in source.events if what == "removed"}


def role_segments(
    source: RaftCluster | Simulator, until: float | None = None
) -> dict[str, list[tuple[float, float, str, int]]]:
    """Per server, the stretches ``(start, end, state, term)`` up to ``until``: the state is its role,
    "crashed", and for a cluster also "learner" (a server added later, until its own log makes it a
    voter; diss. §4.2.1) and "removed" (from when it retired; diss. §4.2.2)."""
    valid.number("until", until, ge=0, unit="seconds", none=True)
    sim = _sim_of(source)
    end = sim.now if until is None else min(until, sim.now)
    learners, removed_at = _membership_changes(source)
    current: dict[str, tuple[float, str, int]] = {}
    out: dict[str, list[tuple[float, float, str, int]]] = {}

    def enter(node: str, t: float, state: str, term: int) -> None:
        out.setdefault(node, [])
        if node in current:
            t0, s0, term0 = current[node]
            if (s0, term0) == (state, term):
                return
            if t > t0:
                out[node].append((t0, t, s0, term0))
        current[node] = (t, state, term)

    for e in sim.trace.of_kind(Kind.STATE, Kind.CRASH):
        t, node = e.time, e.node
        if t > end:
            break
        if t >= removed_at.get(node, math.inf):
            continue  # a retired server's later events are not its own any more
        now = current.get(node, (0.0, "", 0))
        if e.kind is Kind.CRASH:
            state, term = "crashed", now[2]
        elif e.reason == "role":
            state, term = e.detail["role"], e.detail["term"]
        elif e.reason == "configuration" and node in learners and node in e.detail["voters"]:
            learners.discard(node)  # its own log now counts it (diss. §4.2.1)
            state, term = ("follower" if now[1] == "learner" else now[1]), now[2]
        else:
            continue
        enter(node, t, "learner" if state == "follower" and node in learners else state, term)
    for node, t in sorted(removed_at.items(), key=lambda kv: kv[1]):
        if t <= end and node in current:
            enter(node, t, "removed", current[node][2])
    for node, (t0, s0, term0) in current.items():
        if end > t0:
            out[node].append((t0, end, s0, term0))
    return out


_BAR_TEXT = 12  # pixels: the size of the terms written on the role timeline's stretches


def role_timeline(
    source: RaftCluster | Simulator, until: float | None = None, figure: Any = None, title: str | None = None
) -> Any:
    """One row per server, coloured by role over time; the term is written on each stretch."""
    valid.number("until", until, ge=0, unit="seconds", none=True)
    check_figure(figure)
    check_title(title)
    import plotly.graph_objects as go

    sim = _sim_of(source)
    end = sim.now if until is None else min(until, sim.now)
    segs = role_segments(source, end)
    order = sorted(segs, key=lambda n: (len(n), n))
    seen = {s for parts in segs.values() for _, _, s, _ in parts}
    colors = ROLE_COLORS | {state: c for state, c in MEMBER_COLORS.items() if state in seen}
    data = []
    for state, color in colors.items():
        ys, xs, bases, texts = [], [], [], []
        for node in order:
            for t0, t1, s, term in segs[node]:
                if s == state:
                    ys.append(node)
                    bases.append(t0)
                    xs.append(t1 - t0)
                    label = f"t{term}" if state in ("leader", "candidate") else ""
                    texts.append(state if state == "removed" else label)
        hover = "%{y}: " + state + " from %{base:.3f} s for %{x:.3f} s<extra>%{text}</extra>"
        marker: dict[str, Any] = {"color": color}
        if state == "removed":  # hatched: the server is gone, not merely down
            marker |= {
                "pattern": {"shape": "/", "fgcolor": "#888888"},
                "line": {"color": "#888888", "width": 1},
            }
        data.append(go.Bar(y=ys, x=xs, base=bases, orientation="h", name=state, marker=marker, text=texts,
                           textposition="inside", insidetextanchor="middle", textangle=0,
                           textfont={"size": _BAR_TEXT}, hovertemplate=hover, showlegend=True))  # fmt: skip
    # Dotted lines where the network changed (partition, heal, cut), labelled once each.
    changes = sorted({round(e.time, 6) for e in sim.trace.of_kind(Kind.FAULT) if 0 < e.time <= end})
    notes = [
        {"x": t, "y": 1.0, "xref": "x", "yref": "paper", "text": "network change", "showarrow": False,
         "yanchor": "bottom", "font": {"size": 10, "color": "#882255"}}
        for t in changes[:6]
    ]  # fmt: skip
    notes += _membership_notes(segs)
    fig = figure if figure is not None else go.Figure()
    with fig.batch_update():
        replace_traces(fig, data, "x", "y", "base", "text")
        # Assigned, not updated: plotly's update keeps (and rewrites) the old lines when there are fewer now.
        fig.layout.shapes = [vline(t, "#882255", width=1.5) for t in changes]
        fig.layout.annotations = notes
        style_figure(
            fig,
            title=title or f"Roles and terms of each server up to t = {end:.2f} s",
            xaxis="time (virtual seconds)",
            yaxis="server",
            height=max(260, 110 + 45 * len(order)),
        )
        # A term that does not fit its stretch at the usual size is left out (hover the stretch for it),
        # not squeezed into a few pixels or turned on its side.
        fig.update_layout(barmode="overlay", bargap=0.3, uniformtext={"minsize": _BAR_TEXT, "mode": "hide"})
        # The whole run's length, also when replaying only its start (as the space-time diagram does):
        # dragging the replay slider then shows the bars growing, not the picture stretching.
        fig.update_xaxes(range=[0, max(sim.now, 1e-3)])
        rows = list(reversed(order))
        fig.update_yaxes(categoryorder="array", categoryarray=rows, tickmode="array", tickvals=rows,
                         ticktext=[_row_label(node, segs[node]) for node in rows])  # fmt: skip
    return fig


def _membership_notes(segs: dict[str, list[tuple[float, float, str, int]]]) -> list[dict[str, Any]]:
    """A note on the row of each server that joined (how long it caught up as a learner before it
    could vote; diss. §4.2.1): its learner stretch is often too short to read in the bar."""
    notes = []
    for node, parts in segs.items():
        learning = [(t0, t1) for t0, t1, s, _ in parts if s == "learner"]
        if not learning:
            continue
        t0, t1 = learning[0][0], learning[-1][1]
        if parts[-1][2] != "learner":  # after the stretch, over its follower bar
            text = f"learner {t0:.2f}–{t1:.2f} s, then a voter"
            where = {"x": t1, "xanchor": "left", "xshift": 4, "text": text}
        else:  # still catching up: before the row begins, where there is room
            text = f"catching up as a learner from {t0:.2f} s"
            where = {"x": t0, "xanchor": "right", "xshift": -4, "text": text}
        notes.append({"y": node, "xref": "x", "yref": "y", "showarrow": False, **where,
                      "font": {"size": 11, "color": "#1F4E79"}})  # fmt: skip
    return notes


def _row_label(node: str, parts: list[tuple[float, float, str, int]]) -> str:
    """The server's name, and "removed" or "learner" when it ends the run so, "added" when it joined
    as a learner and now counts."""
    last = parts[-1][2] if parts else ""
    if last in MEMBER_COLORS:
        return f"{node} ({last})"
    return f"{node} (added)" if any(s == "learner" for _, _, s, _ in parts) else node


def election_summary(sim: Simulator | RaftCluster) -> str:
    """One line: who leads which term now, and how many elections were held; for a cluster whose
    membership changed, its voters and learners now and the servers removed (diss. ch. 4)."""
    valid.instance("sim", sim, (Simulator, RaftCluster))
    if isinstance(sim, RaftCluster):
        return election_summary(sim.sim) + _membership_summary(sim)
    leaders = {}
    elections = 0
    for e in sim.trace.notes("role"):
        if e.detail["role"] == "leader":
            leaders[e.detail["term"]] = e.node
        elif e.detail["role"] == "candidate":
            elections += 1
    now = []
    for nid in sim.nodes:
        if sim.is_up(nid):
            node = sim.node(nid)
            if getattr(node, "role", None) is Role.LEADER:
                now.append(f"{nid} (term {node.current_term})")
    lead = ", ".join(now) if now else "nobody"
    candidacies = f"{elections} {'candidacy' if elections == 1 else 'candidacies'}"
    terms = f"{len(leaders)} {'term' if len(leaders) == 1 else 'terms'} with a leader"
    return f"t = {sim.now:.2f} s: leader now {lead}; {candidacies}, {terms}"


def _in_order(c: RaftCluster, servers: Iterable[str]) -> str:
    """``servers`` in the cluster's order (n1, n2, ..., added ones last), not the order they were promoted in."""
    chosen = set(servers)
    return ", ".join(n for n in c.ids if n in chosen)


def _membership_summary(c: RaftCluster) -> str:
    conf = c.configuration()
    changed = c.removed or any(what == "start" for _, what, _ in c.events)
    if not changed:
        return ""
    text = ""
    if conf is not None:
        text += f" | voters {_in_order(c, conf.voters)}"
        if conf.learners:
            text += f"; learners (catching up) {_in_order(c, conf.learners)}"
    if c.removed:
        text += f" | removed {', '.join(n for n in c.ids if n in c.removed)}"
    return text


def election_widget(n: int = 5, seed: int = 1, duration: float = 4.0, fault_at: float = 1.5) -> Any:
    """The cluster widget over a Raft cluster, drawing the role timeline.

    Untick a server to crash it at the fault time, put servers on side B to
    partition them, add a server or remove one at the fault time (diss. ch. 4:
    a new server is a learner until it has caught up), and drag the time
    slider to replay. Returns a :class:`labkit.viz.cluster.ClusterWidget`.
    """
    valid.number("duration", duration, gt=0, le=MAX_RUN, unit="seconds")
    valid.integer("n", n, ge=1, le=9, note="servers")
    from labkit.viz.cluster import ClusterWidget

    def build(s: int) -> RaftCluster:
        return RaftCluster(n=n, seed=s, strict=False)

    return ClusterWidget(
        build, seed=seed, duration=duration, fault_at=fault_at, draw=role_timeline, summary=election_summary
    )


# -- logs ------------------------------------------------------------
def _short(command: Any) -> str:
    if command is NOOP:
        return "no-op"
    if isinstance(command, Configuration):
        return "config"
    if isinstance(command, KVCommand):  # short enough for a cell of the grid: k=v, k+=v, get k
        op = command.op
        if op[0] == "put":
            text = f"{op[1]}={op[2]}"
        elif op[0] == "append":
            text = f"{op[1]}+={op[2]}"
        else:
            text = " ".join(map(str, op[:2]))
    else:
        text = str(command)
    return text if len(text) <= 8 else text[:7] + "…"


SNAPSHOT_COLOR = "#DDDDDD"
BOUNDARY_COLOR = "#555555"


def _server_log(c: RaftCluster, nid: str) -> tuple[RaftLog, int, bool]:
    """(log, commit index, up): a crashed server shows the log (and snapshot) it kept on disk."""
    if c.is_up(nid):
        node = c.node(nid)
        return node.log, node.commit_index, True
    _snapshot, log = load_log(c.sim.storage(nid))
    return log, 0, False


def _membership_tag(c: RaftCluster, nid: str, conf: Configuration | None) -> str | None:
    if nid in c.removed:
        return "removed"
    if conf is None or nid in conf.voters:
        return None
    return "learner" if nid in conf.learners else "outside"


def _cell(color: str) -> dict[str, Any]:
    return {"symbol": "square", "size": 34, "color": color}


def _bars(x: list, y: list, name: str, width: float, color: str) -> Any:
    """Vertical bars between log cells (``x`` at half indexes, ``None`` between bars)."""
    import plotly.graph_objects as go

    marker = {"symbol": "line-ns", "size": 40, "line": {"width": width, "color": color}}
    return go.Scatter(x=x, y=y, mode="markers", name=name, marker=marker, hoverinfo="skip")


def _server_label(cluster: RaftCluster, nid: str, up: bool, side_of: dict[str, str]) -> str:
    """``nid`` with what is going on at it: leader or crashed, its membership, its side, "cut off"."""
    tags = ["leader"] if nid == cluster.leader() else [] if up or nid in cluster.removed else ["crashed"]
    member = _membership_tag(cluster, nid, cluster.configuration())
    if member:
        tags.append(member)
    if nid in side_of:
        tags.append(f"side {side_of[nid]}")
    if up and not any(cluster.can_reach(nid, other) for other in cluster.ids if other != nid):
        tags.append("cut off")
    return f"{nid} ({', '.join(tags)})" if tags else nid


@dataclass
class _LogCells:
    """What :func:`log_grid` draws, read from the cluster: the indexes ``lo`` to ``top``, a labelled
    row per server, its entries' cells by term, the cells a snapshot replaced, and the bars."""

    lo: int
    top: int
    labels: list[str] = field(default_factory=list)
    terms: dict[int, dict[str, list]] = field(default_factory=dict)  # term -> x, y, text, hover
    snapshot: dict[str, list] = field(default_factory=lambda: point_columns("x", "y", "hover"))
    commit: tuple[list, list] = field(default_factory=lambda: ([], []))  # x, y of the commit bars
    boundary: tuple[list, list] = field(default_factory=lambda: ([], []))  # and of the snapshot bars

    @classmethod
    def of(cls, cluster: RaftCluster, window: int) -> _LogCells:
        logs = {nid: _server_log(cluster, nid) for nid in cluster.ids}
        top = max((log.last_index for log, _, _ in logs.values()), default=0)
        lo = max(1, top - window + 1)
        grid = cls(lo, top)
        sides = cluster.partitions if len(cluster.partitions) > 1 else []
        side_of = {nid: SIDE_NAMES[k] for k, side in enumerate(sides) for nid in side}
        for nid in cluster.ids:
            log, commit, up = logs[nid]
            label = _server_label(cluster, nid, up, side_of)
            grid.labels.append(label)
            base = log.snapshot_index
            for i in range(lo, base + 1):
                hover = f"{nid}[{i}]: in the snapshot (up to index {base}, term {log.snapshot_term})"
                add_point(grid.snapshot, x=i, y=label, hover=hover)
            for i in range(max(lo, base + 1), log.last_index + 1):
                e = log[i]
                hover = f"{nid}[{i}] term {e.term}: {e.command!r}"
                cell = grid.terms.setdefault(e.term, point_columns("x", "y", "text", "hover"))
                add_point(cell, x=i, y=label, text=_short(e.command), hover=hover)
            if up and commit >= lo - 1:
                _add_bar(grid.commit, commit, label)
            if base >= lo - 1 and base:
                _add_bar(grid.boundary, base, label)
        return grid

    def traces(self) -> list[Any]:
        data = []
        if self.snapshot["x"]:
            data.append(marks(self.snapshot, name="in a snapshot", marker=_cell(SNAPSHOT_COLOR)))
        for term in sorted(self.terms):
            text = {"size": 9, "color": "white" if term % len(PALETTE) not in (6, 8) else "black"}
            data.append(marks(self.terms[term], name=f"term {term}", marker=_cell(PALETTE[term % len(PALETTE)]),
                              textposition="middle center", textfont=text))  # fmt: skip
        if self.boundary[0]:
            data.append(_bars(*self.boundary, "snapshot boundary", 3, BOUNDARY_COLOR))
        data.append(_bars(*self.commit, "commit index", 4, "#B00020"))
        return data


def _add_bar(bars: tuple[list, list], index: int, label: str) -> None:
    """A bar after ``index`` on the row ``label`` (``None`` separates bars)."""
    bars[0].extend((index + 0.5, index + 0.5, None))
    bars[1].extend((label, label, None))


def log_grid(cluster: RaftCluster, figure: Any = None, window: int = 20, title: str | None = None) -> Any:
    """Each server's log as cells coloured by term; a bar after the last committed entry.

    Crashed servers show the log they kept on disk (their commit index is
    volatile, so none is marked). Only the last ``window`` indexes are drawn.
    Entries a snapshot replaced (§7) are grey cells, and a dark grey bar marks
    the snapshot boundary (after its last included index). Each row is labelled with
    what is going on at that server: leader or crashed, learner, outside the
    cluster or removed (diss. ch. 4), its side of a partition (A, B, ...) and
    "cut off" when it can reach no other server.
    """
    check_figure(figure)
    check_title(title)
    valid.instance("cluster", cluster, RaftCluster)
    grid = _LogCells.of(cluster, valid.integer("window", window, ge=1))
    fig = new_figure(figure)
    with fig.batch_update():
        fig.data = []
        fig.add_traces(grid.traces())
        style_figure(
            fig,
            title=title or f"Logs at t = {cluster.sim.now:.2f} s (colour = term, red bar = commit index)",
            xaxis="log index",
            yaxis="server",
            height=max(260, 120 + 48 * len(grid.labels)),
        )
        fig.update_xaxes(range=[grid.lo - 0.6, max(grid.lo + 7, grid.top) + 0.6], dtick=1, showgrid=False)
        fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(grid.labels)), showgrid=False)
    return fig


def log_growth_figure(runs: dict[str, list[tuple[float, int, int]]], title: str | None = None) -> Any:
    """Entries in the leader's log over time, one line per run (``name -> log_growth(...)``), with the
    entries every server keeps on disk in the hover (§7: what compaction keeps bounded)."""
    check_title(title)
    if not isinstance(runs, dict) or not runs:
        raise TypeError(
            f"runs must be a non-empty dict of name -> [(time, log entries, stored)], got {runs!r}"
        )
    fig = new_figure()
    for i, (name, samples) in enumerate(runs.items()):
        hover = [f"{name}: {p[1]:,} entries in the log, {p[2]:,} on disk (all servers)" for p in samples]
        fig.add_scatter(x=[p[0] for p in samples], y=[p[1] for p in samples], mode="lines+markers", name=name,
                        line={"color": PALETTE[i % len(PALETTE)]}, hovertext=hover, hoverinfo="text")  # fmt: skip
    style_figure(fig, title=title or "Entries in the leader's log while the cluster takes writes",
                 xaxis="time (virtual seconds)", yaxis="entries in the log", height=360)  # fmt: skip
    return fig


class LogExplorer(Widget):
    """Drive a Raft cluster by hand and watch its logs (notebook 08).

    Every action is appended to :attr:`actions`, and the whole list is
    replayed on a fresh cluster from the seed, so the same clicks always give
    the same picture. Each control calls the method of its name: the buttons
    **Crash n2**, **Restart n2**, **Isolate n2**, **Remove n2** and **Lead: n2**
    act on the server ``choose(node)`` picked (from Python, name the server);
    the leader shortcuts call ``crash()`` and ``isolate()`` without one, and
    ``restart()`` restarts every crashed server. Impossible actions (crash a
    crashed server, submit without a leader) raise ``ValueError``; the
    controls show the message in the status line instead.
    """

    def __init__(self, n: int = 5, seed: int = 1, settle: float = 1.0, **cluster_options: Any) -> None:
        valid.number("settle", settle, ge=0, le=MAX_RUN, unit="seconds")
        self.n = valid.integer("n", n, ge=1, le=9, note="servers")
        self.seed = seed
        self.settle = settle
        self.options = {"strict": False, **cluster_options}
        self.actions: list[tuple[str, Any]] = []
        self.cluster = self._replay()
        self.chosen = self.cluster.ids[0]

    # -- the model -------------------------------------------------------------
    def _replay(self) -> RaftCluster:
        c = RaftCluster(n=self.n, seed=self.seed, **self.options)
        c.sim.run_for(self.settle)
        at_once = {"crash": c.crash, "restart": lambda n: self._restart(c, n), "isolate": c.disconnect,
                   "heal": lambda _: c.heal(), "run": c.sim.run_for,
                   "partition": lambda side_b: self._partition(c, set(side_b))}  # fmt: skip
        changes = {"add": c.add_server, "remove": c.remove_server, "transfer": c.transfer_leadership}
        for what, arg in self.actions:
            if what in at_once:
                at_once[what](arg)
                continue
            if what == "submit":
                c.submit(arg)
            else:
                changes[what](arg, wait=False)
            c.sim.run_for(0.02)  # a moment for the leader to act on the request
        return c

    @staticmethod
    def _restart(c: RaftCluster, node: str) -> None:
        c.restart(node)
        c.sim.run_for(0)  # it boots now: its term, vote and log are read back from disk before we look

    @staticmethod
    def _partition(c: RaftCluster, side_b: set[str]) -> None:
        if 0 < len(side_b) < len(c.ids):
            c.partition([x for x in c.ids if x not in side_b], [x for x in c.ids if x in side_b])
        else:
            c.partition(c.ids)  # everyone on one side: no partition (isolated servers stay so)

    def _do(self, *actions: tuple[str, Any]) -> None:
        done = len(self.actions)
        self.actions.extend(actions)
        try:
            self.cluster = self._replay()
        except Exception:
            del self.actions[done:]
            raise
        if self.chosen not in self.present:  # removed: the controls offer it no more
            self.chosen = self.present[0]
        self._refresh()

    def _server(self, node: Any) -> str:
        if node in self.cluster.removed:
            raise ValueError(f"{node} was removed from the cluster; Reset brings it back")
        return valid.one_of("node", node, self.present)

    def _pick(self, node: str | None, default: str | None, what: str) -> str:
        if node is None:
            node = default
        if node is None:
            raise ValueError(f"no server to {what}: name one of {', '.join(self.cluster.ids)}")
        return self._server(node)

    def _no_leader(self, what: str) -> ValueError:
        """Why there is no leader to ``what``, and whether running on brings one: an election needs a
        candidate that is up and reaches a majority of the voters, itself included (§5.2, diss. §4.1:
        the voters of the latest configuration in its log)."""
        c = self.cluster
        live = {n: node for n, node in c.live_nodes().items() if n not in c.removed}
        if not live:
            return ValueError(f"there is no leader to {what}: every server is down; restart one first")
        newest = max(live.values(), key=lambda node: (node.log.last_term, node.log.last_index))
        voters = newest.configuration.voters
        majority = len(voters) // 2 + 1

        def votes(candidate: str) -> int:  # the live voters it exchanges messages with, itself included
            return sum(1 for v in voters if v in live and (v == candidate or both_ways(candidate, v)))

        def both_ways(a: str, b: str) -> bool:
            return c.can_reach(a, b) and c.can_reach(b, a)

        reach = max((votes(n) for n in live if n in voters), default=0)
        if reach >= majority:
            return ValueError(f"there is no leader to {what} right now (an election is under way); "
                              "run the cluster for a while first")  # fmt: skip
        return ValueError(
            f"there is no leader to {what}, and none can be elected: a candidate needs the votes of {majority} "
            f"of the {len(voters)} voters, but at most {reach} are up and can reach each other; restart a "
            "crashed server or heal the network first"
        )

    def choose(self, node: str) -> None:
        """Pick the server the Crash / Restart / Isolate buttons act on."""
        self.chosen = self._server(node)
        if self.status is not None:
            self._show_settings()  # nothing happens to the cluster until a button is pressed

    def submit(self, command: str) -> None:
        """Hand ``command`` to the current leader (refused when there is none)."""
        if not isinstance(command, str) or not command.strip():
            raise ValueError(f"type a command to submit first, such as x=1 (got {command!r})")
        if self.cluster.leader() is None:
            raise self._no_leader("take a command")
        self._do(("submit", command.strip()))

    def crash(self, node: str | None = None) -> None:
        """Crash ``node`` (default: the leader)."""
        node = self._pick(node, self.cluster.leader(), "crash (there is no leader)")
        if not self.cluster.is_up(node):
            raise ValueError(f"{node} is already crashed; restart it first")
        self._do(("crash", node))

    def restart(self, node: str | None = None) -> None:
        """Restart ``node`` from its disk (default: every crashed server)."""
        # A removed server is shut down for good, not crashed (diss. §4.2.2): it stays down.
        down = [n for n in self.present if not self.cluster.is_up(n)]
        if node is None:
            if not down:
                raise ValueError("no server is crashed")
            self._do(*(("restart", d) for d in down))
            return
        node = self._server(node)
        if node not in down:
            raise ValueError(f"{node} is not crashed, so it cannot restart")
        self._do(("restart", node))

    def isolate(self, node: str | None = None) -> None:
        """Cut ``node`` (default: the leader) off from every server and client."""
        node = self._pick(node, self.cluster.leader(), "isolate (there is no leader)")
        if node in self.cluster.disconnected:
            raise ValueError(f"{node} is already cut off; Heal reconnects it")
        self._do(("isolate", node))

    @property
    def side_b(self) -> frozenset[str]:
        """The servers on side B of the partition (empty: no partition)."""
        side: frozenset[str] = frozenset()
        for what, arg in self.actions:
            if what == "partition":
                side = frozenset(arg)
            elif what == "heal":
                side = frozenset()
        return side

    def set_side(self, node: str, side: str) -> None:
        """Put ``node`` on side ``"A"`` or ``"B"`` of the partition."""
        node = self._server(node)
        if side not in ("A", "B"):
            raise ValueError(f"side must be 'A' or 'B', got {side!r}")
        now = self.side_b
        if (node in now) == (side == "B"):
            raise ValueError(f"{node} is already on side {side}")
        self._do(("partition", tuple(sorted(now ^ {node}))))

    def partition(self, side_b: Iterable[str]) -> None:
        """Put exactly the servers ``side_b`` on side B, everyone else on side A: the sides cannot talk
        to each other (clients still reach everyone); all on one side means no partition."""
        if isinstance(side_b, str):
            raise TypeError(
                f"side_b must be a list of server ids, got the string {side_b!r}; write [{side_b!r}]"
            )
        chosen = frozenset(self._server(n) for n in side_b)
        self._do(("partition", tuple(sorted(chosen))))

    def heal(self) -> None:
        """End the partition and reconnect every isolated server."""
        self._do(("heal", None))

    def add_server(self) -> str:
        """Start a new server and ask the leader to add it: a learner until it has caught up, then a
        voter (diss. §4.2.1); returns its id."""
        c = self.cluster
        if c.leader() is None:
            raise self._no_leader("add a server")
        if len(c.ids) >= MAX_EXPLORER_SERVERS:
            raise ValueError(f"the explorer shows at most {MAX_EXPLORER_SERVERS} servers")
        node = f"n{len(c.ids) + 1}"
        self._do(("add", node))
        return node

    def remove_server(self, node: str | None = None) -> None:
        """Ask the leader to take ``node`` (default: the chosen server) out of the configuration; it
        shuts down once that is committed (diss. §4.2.2)."""
        c = self.cluster
        node = self._pick(node, self.chosen, "remove")
        conf = c.configuration()
        if conf is None:
            raise self._no_leader("remove a server")
        if node not in conf.members:
            raise ValueError(f"{node} is not in the configuration ({', '.join(conf.members)})")
        if conf.voters == (node,):
            raise ValueError(f"{node} is the last voter; add another server first")
        self._do(("remove", node))

    def transfer(self, node: str | None = None) -> None:
        """Ask the leader to hand its leadership to ``node`` (default: the chosen server; diss. §3.10)."""
        c = self.cluster
        node = self._pick(node, self.chosen, "hand leadership to")
        leader, conf = c.leader(), c.configuration()
        if leader is None or conf is None:
            raise ValueError("there is no leader to hand leadership over")
        if node == leader:
            raise ValueError(f"{node} already leads")
        if node not in conf.voters or not c.is_up(node):
            raise ValueError(f"leadership goes to a live voter ({', '.join(conf.voters)}), not {node}")
        self._do(("transfer", node))

    def run(self, seconds: float = 0.5) -> None:
        """Let ``seconds`` of virtual time pass."""
        self._do(("run", valid.number("seconds", seconds, gt=0, le=30, unit="seconds")))

    def reset(self) -> None:
        """Forget every action."""
        self.actions = []
        self.cluster = self._replay()
        if self.chosen not in self.cluster.ids:
            self.chosen = self.cluster.ids[0]
        self._refresh()

    def summary(self) -> str:
        c = self.cluster
        leader = c.leader()
        lead = f"{leader} leads term {c.node(leader).current_term}" if leader else "no leader"
        gone = {n: "removed" if n in c.removed else "down" for n in c.ids if not c.is_up(n)}
        commits = ", ".join(f"{n}:{gone[n]}" if n in gone else f"{n}:{c.node(n).commit_index}" for n in c.ids)
        conf = c.configuration()
        if conf is not None and (conf.learners or tuple(conf.voters) != tuple(c.ids)):
            commits += f" | voters {_in_order(c, conf.voters)}"
            if conf.learners:
                commits += f"; learners {_in_order(c, conf.learners)}"
        net = ""
        sides = c.partitions
        if len(sides) > 1:
            net += " | partition " + " / ".join(
                f"{SIDE_NAMES[k]}: {', '.join(g)}" for k, g in enumerate(sides)
            )
        if c.disconnected:
            net += f" | cut off: {', '.join(c.disconnected)}"
        bad = f" | VIOLATIONS: {len(c.violations)}" if c.violations else ""
        return f"t = {c.sim.now:.2f} s: {lead}; commit index {commits}{net}{bad}"

    def figure(self) -> Any:
        """The log grid of the current cluster (no widgets needed)."""
        return log_grid(self.cluster)

    # -- the view ----------------------------------------------------------------
    def _build_ui(self) -> Any:
        import ipywidgets as W

        self.fig, _plot = self._plot_area()
        self.command = W.Text(value="x=1", description="command", tooltip="what to submit to the leader")

        def act(label: str, tip: str, fn: Callable[[], Any]) -> Any:
            return self._on_click(button(label, tip=tip), fn)

        submit = act("Submit", "append the command at the leader", lambda: self.submit(self.command.value))
        run = act("Run 0.5 s", "let half a second of virtual time pass", lambda: self.run(0.5))
        reset = act("Reset", "forget every action", self.reset)
        # The chosen server and what to do to it.
        self.server_picker = dropdown("server", list(self.present), self.chosen, width="160px")
        self._on_change(self.server_picker, self.choose)

        def on_chosen(verb: str, tip: str, fn: Callable[[str], Any]) -> Any:
            return act(verb, tip, lambda: fn(self.chosen))

        self.crash_button = on_chosen("Crash", "crash the chosen server", self.crash)
        self.restart_button = on_chosen("Restart", "restart the chosen server from its disk", self.restart)
        self.isolate_button = on_chosen("Isolate", "cut the chosen server off from everyone", self.isolate)
        self.remove_button = on_chosen(
            "Remove", "take the chosen server out of the cluster", self.remove_server
        )
        self.transfer_button = on_chosen("Lead:", "hand leadership to the chosen server", self.transfer)
        add = act("Add server", "start a new server and add it to the cluster", self.add_server)
        shortcuts = [
            act("Crash leader", "crash the current leader", lambda: self.crash()),
            act("Isolate leader", "cut the leader off from everyone", lambda: self.isolate()),
            act("Restart crashed", "restart every crashed server from its disk", lambda: self.restart()),
        ]
        # The partition: one A/B toggle per server (added servers get theirs), and Heal.
        self.side_pickers = {}
        self.sides_box = W.HBox([])
        self._add_side_pickers()
        heal = act("Heal", "end the partition and reconnect every server", self.heal)
        chosen = [self.crash_button, self.restart_button, self.isolate_button]
        membership = [add, self.remove_button, self.transfer_button]
        self._for_chosen = [*chosen, *membership[1:]]  # buttons that act on the chosen server
        self.buttons = [submit, run, *chosen, *shortcuts, *membership, heal, reset]
        return self._page(
            W.HBox([self.command, submit, run, reset]),
            W.HBox([self.server_picker, *chosen]),
            W.HBox([W.Label("leader shortcuts:"), *shortcuts]),
            W.HBox([W.Label("membership:"), *membership]),
            W.HBox([W.Label("partition sides:"), self.sides_box, heal]),
        )

    @property
    def present(self) -> tuple[str, ...]:
        """The servers the controls offer: every one but those removed (diss. §4.2.2)."""
        return tuple(n for n in self.cluster.ids if n not in self.cluster.removed)

    def _add_side_pickers(self) -> None:
        """One A/B toggle per server present, made for the servers that have none yet (added ones);
        a removed server's toggle goes."""
        import ipywidgets as W

        for nid in [n for n in self.side_pickers if n not in self.present]:
            del self.side_pickers[nid]
        for nid in self.present:
            if nid in self.side_pickers:
                continue
            t = toggles(["A", "B"], "B" if nid in self.side_b else "A", button_width="30px",
                        tips=[f"{nid} on side A", f"{nid} on side B"])  # fmt: skip
            t.layout.width = "auto"
            self._on_change(t, lambda side, nid=nid: self.set_side(nid, side))
            self.side_pickers[nid] = t
        self.sides_box.children = [W.HBox([W.Label(nid), t]) for nid, t in self.side_pickers.items()]

    def _sync_controls(self) -> None:
        if tuple(self.server_picker.options) != self.present:
            self.server_picker.options = list(self.present)
            self._add_side_pickers()
        self.server_picker.value = self.chosen
        for b in self._for_chosen:
            b.description = f"{b.description.split()[0]} {self.chosen}"
        side_b = self.side_b
        for nid, t in self.side_pickers.items():
            t.value = "B" if nid in side_b else "A"

    def _redraw(self) -> None:
        log_grid(self.cluster, figure=self.fig)
        self.status.value = status_html(self.summary())


def _yes(granted: bool) -> str:
    return "yes" if granted else "no"


def _entries(m: Any) -> str:
    return ", ".join(f"t{e.term}:{_short(e.command)}" for e in m.entries) or "heartbeat"


def _append_reply(m: Any) -> str:
    if m.success:
        return f"AppendEntriesReply(term={m.term}, ok, match={m.match_index})"
    return f"AppendEntriesReply(term={m.term}, no, conflict={m.conflict_index}/t{m.conflict_term})"


def _snapshot_reply(m: Any) -> str:
    if m.done:
        return f"InstallSnapshotReply(term={m.term}, installed up to {m.last_included_index})"
    return f"InstallSnapshotReply(term={m.term}, has {m.stored} bytes)"


# How the message table writes each Raft message (Figure 2, §7 snapshots, §9.6 PreVote, §3.10 transfer).
_DESCRIBE: dict[str, Callable[[Any], str]] = {
    "RequestVote": lambda m: f"RequestVote(term={m.term}, last={m.last_log_index}/t{m.last_log_term})",
    "RequestVoteReply": lambda m: f"RequestVoteReply(term={m.term}, {_yes(m.vote_granted)})",
    "AppendEntries": lambda m: (
        f"AppendEntries(term={m.term}, prev={m.prev_log_index}/t{m.prev_log_term}, "
        f"[{_entries(m)}], commit={m.leader_commit})"
    ),
    "AppendEntriesReply": _append_reply,
    "InstallSnapshot": lambda m: (
        f"InstallSnapshot(term={m.term}, last included={m.last_included_index}/t{m.last_included_term}, "
        f"offset={m.offset}, {len(m.data)} bytes{', done' if m.done else ''})"
    ),
    "InstallSnapshotReply": _snapshot_reply,
    "PreVote": lambda m: f"PreVote(next term={m.next_term}, last={m.last_log_index}/t{m.last_log_term})",
    "PreVoteReply": lambda m: f"PreVoteReply(term={m.term}, {_yes(m.vote_granted)})",
    "TimeoutNow": lambda m: f"TimeoutNow(term={m.term})",
}


def _describe(msg: Any) -> str:
    describe = _DESCRIBE.get(type(msg).__name__)
    return describe(msg) if describe else repr(msg)


def message_table(
    cluster: RaftCluster, since: float = 0.0, until: float | None = None, limit: int = 40
) -> Any:
    """The Raft messages sent between ``since`` and ``until`` as a pandas DataFrame."""
    valid.number("since", since, ge=0, unit="seconds")
    valid.number("until", until, ge=0, unit="seconds", none=True)
    valid.integer("limit", limit, ge=1)
    valid.instance("cluster", cluster, RaftCluster)
    import pandas as pd

    end = cluster.sim.now if until is None else until
    servers = set(cluster.ids)
    rows = []
    for e in cluster.sim.trace.of_kind(Kind.SEND):
        if since <= e.time <= end and e.src in servers and e.dst in servers:
            rows.append({"time (ms)": round(e.time * 1000, 2), "from": e.src, "to": e.dst,
                         "message": _describe(e.message)})  # fmt: skip
            if len(rows) >= limit:
                break
    return pd.DataFrame(rows, columns=["time (ms)", "from", "to", "message"])


def history_table(cluster: RaftCluster) -> Any:
    """The clients' history as a pandas DataFrame (``ret`` is inf for operations that never returned)."""
    valid.instance("cluster", cluster, RaftCluster)
    import pandas as pd

    columns = ["client", "call", "ret", "input", "output", "attempts"]
    return pd.DataFrame([{c: getattr(h, c) for c in columns} for h in cluster.history], columns=columns)
