"""The notebook-10 widget and figures, driven without a browser."""

from __future__ import annotations

import pytest

from labkit.eventstore import InMemoryEventStore, Repository, SQLiteEventStore
from labkit.eventstore.bank import Account, bank_upcasters, measure_load_times, simulate_activity
from labkit.viz.eventsourcing import ReplayWidget, global_log_figure, load_time_figure


@pytest.fixture
def repo(tmp_path):
    store = SQLiteEventStore(tmp_path / "e.db")
    repo = Repository(store, Account, upcasters=bank_upcasters())
    simulate_activity(repo, 3, 45, seed=10)
    yield repo
    store.close()


def test_slider_rebuilds_the_state_of_each_version(repo):
    w = ReplayWidget(repo, "acct-1")
    ui = w.ui
    assert ui is not None and w.version == w.n == repo.load("acct-1").version
    for v in range(w.n + 1):
        w.slider.value = v
        expected = repo.load("acct-1", at_version=v)
        assert w.state.version == v and w.state.balance == expected.balance
        assert w.fig.data[1].x[-1] == v and len(w.fig.data[1].x) == v + 1
        assert f"version {v} of {w.n}" in w.status.value
    assert w.values[-1] == repo.load("acct-1").balance / 100


def test_buttons_step_and_stop_at_the_ends(repo):
    w = ReplayWidget(repo, "acct-0")
    assert w.ui is not None
    w.set_version(0)
    w.back_button.click()
    assert w.version == 0 and w.slider.value == 0
    w.next_button.click()
    assert w.version == 1 and w.slider.value == 1 and w.state.owner == "ada"
    w.step(10_000)
    assert w.version == w.n
    assert "last event applied" in w.describe()


def test_refused_settings_show_a_message_not_a_traceback(repo):
    w = ReplayWidget(repo, "acct-0")
    with pytest.raises(ValueError, match=f"from 0 to {w.n}"):
        w.set_version(w.n + 1)
    with pytest.raises(TypeError):
        w.set_version("3")
    assert w.ui is not None
    from labkit.viz.common import guarded

    guarded(w.status)(w.set_version)(-1)
    assert "labkit-widget-refused" in w.status.value and "from 0 to" in w.status.value


def test_figures_have_titles_axes_and_legends(repo, tmp_path):
    g = global_log_figure(repo.store, limit=30)
    assert "global log" in g.layout.title.text and g.layout.xaxis.title.text == "global position"
    assert sum(len(t.x) for t in g.data) == 30 and {t.name for t in g.data} >= {"AccountOpened", "Deposited"}
    rows = measure_load_times(str(tmp_path), lengths=(50, 130), snapshot_every=40, repeats=1)
    assert [(r["events"], r["mode"], r["events_replayed"]) for r in rows] == [
        (50, "full replay", 50),
        (50, "from snapshot", 10),
        (130, "full replay", 130),
        (130, "from snapshot", 10),
    ]
    f = load_time_figure(rows)
    assert [t.name for t in f.data] == ["full replay", "from snapshot"] and f.layout.yaxis.title.text
    with pytest.raises(ValueError):
        load_time_figure([])
    with pytest.raises(TypeError):
        global_log_figure(InMemoryEventStore, limit=3)


def test_widget_keeps_working_after_the_store_is_closed(repo):
    """A learner who ran the whole notebook (which closes the store at the end) can still use it."""
    w = ReplayWidget(repo, "acct-0")
    assert w.ui is not None
    expected = [repo.load("acct-0", at_version=v).balance for v in range(w.n + 1)]
    repo.store.close()
    for v in reversed(range(w.n + 1)):
        w.slider.value = v
        assert w.state.balance == expected[v]
    assert "labkit-widget-error" not in w.status.value


def test_events_not_replayed_yet_are_faded_like_their_line(repo):
    # At version 0 every event's marker was drawn at full strength over the dotted "whole history",
    # as if it had been applied already.
    w = ReplayWidget(repo, "acct-0")
    _ = w.ui
    for v in (0, 5, w.n):
        w.set_version(v)
        markers = w.fig.data[2:-1]
        assert {t.name for t in markers} >= {"AccountOpened", "Deposited"}
        for t in markers:
            assert [o == 1.0 for o in t.marker.opacity] == [x <= v for x in t.x], (v, t.name)
