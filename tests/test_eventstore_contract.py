"""The event-store contract, checked once per backend.

``EventStoreContract`` holds every test; each backend's class only says how
to build a store. A new backend (say PostgreSQL) is covered by adding a
subclass with its own ``make_store``.
"""

from __future__ import annotations

import math
import sqlite3
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labkit.eventstore import (
    ConcurrencyError,
    CorruptEventError,
    Durability,
    EventStore,
    InMemoryEventStore,
    NewEvent,
    SerializationError,
    SQLiteEventStore,
    StoreClosedError,
    StoreOpenError,
    StreamNotFoundError,
)
from labkit.eventstore.recorder import MAX_DEPTH


def ev(n: int, kind: str = "Noted") -> NewEvent:
    return NewEvent(kind, {"n": n})


# ---------------------------------------------------------------- what the store must give back
# The rule, written out independently of labkit's own walker: JSON carries exactly dict (str keys),
# list, str (that UTF-8 can encode), int, finite float, bool and None, nested at most MAX_DEPTH deep.
def storable(x, depth: int = 0) -> bool:
    if type(x) is str:
        return utf8(x)
    if x is None or type(x) in (bool, int):
        return True
    if type(x) is float:
        return math.isfinite(x)
    if depth >= MAX_DEPTH:
        return False
    if type(x) is list:
        return all(storable(i, depth + 1) for i in x)
    if type(x) is dict:
        return all(type(k) is str and utf8(k) and storable(i, depth + 1) for k, i in x.items())
    return False


def utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def identical(a, b) -> bool:
    """Equal *and* of the same types all the way down (``1 == 1.0 == True`` does not count)."""
    if type(a) is not type(b):
        return False
    if type(a) is dict:
        return list(a) == list(b) and all(identical(a[k], b[k]) for k in a)
    if type(a) is list:
        return len(a) == len(b) and all(identical(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return a == b


_texts = st.one_of(st.text(max_size=8), st.sampled_from(["\ud800", "a\udfffb", "naïve ☃", "", "1", "true"]))
_keys = st.one_of(
    _texts, _texts, _texts, st.integers(-2, 2), st.booleans(), st.none(), st.floats(allow_nan=False)
)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70), st.floats(), _texts
)
json_like = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=12,
)


class EventStoreContract:
    """Subclass and define ``make_store(tmp_path)``."""

    def make_store(self, tmp_path) -> EventStore:
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path):
        s = self.make_store(tmp_path)
        yield s
        s.check_invariants()
        s.close()

    # ------------------------------------------------------------ appending
    def test_append_to_new_stream_numbers_versions_and_positions(self, store):
        recorded = store.append("a", [ev(1), ev(2)], expected_version=0)
        assert [(r.version, r.position) for r in recorded] == [(1, 1), (2, 2)]
        recorded = store.append("b", [ev(3)], expected_version=0)
        assert [(r.stream_id, r.version, r.position) for r in recorded] == [("b", 1, 3)]
        recorded = store.append("a", [ev(4)], expected_version=2)
        assert [(r.version, r.position) for r in recorded] == [(3, 4)]
        assert store.stream_version("a") == 3 and store.stream_version("b") == 1
        assert store.head_position() == 4

    def test_round_trip_keeps_json_values(self, store):
        data = {
            "text": "naïve ☃",
            "int": -7,
            "big": 2**53,
            "float": 0.1,
            "none": None,
            "ok": True,
            "list": [1, [2, {"x": "y"}]],
        }
        store.append("s", [NewEvent("T", data, schema_version=3, metadata={"by": "ada"})], 0)
        (r,) = store.read("s")
        assert (r.type, r.data, r.schema_version, r.metadata) == ("T", data, 3, {"by": "ada"})

    @settings(
        max_examples=120,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(
        data=st.dictionaries(_keys, json_like, max_size=4), meta=st.dictionaries(_keys, json_like, max_size=2)
    )
    def test_data_comes_back_exactly_or_is_refused(self, store, data, meta):
        """Property: whatever the store accepts, it gives back identically; the rest it refuses, writing nothing."""
        head = store.head_position()
        stream = f"s{head}"
        if storable(data) and storable(meta):
            store.append(stream, [NewEvent("T", data, metadata=meta)], 0)
            (r,) = store.read(stream)
            assert identical(r.data, data) and identical(r.metadata, meta)
            assert identical(store.read_payloads(stream)[0][1], data)
        else:
            with pytest.raises(SerializationError, match=r"events\[0\] \(type 'T'\) (data|metadata)"):
                store.append(stream, [NewEvent("T", data, metadata=meta)], 0)
            assert store.head_position() == head

    @pytest.mark.parametrize(
        ("data", "where", "why"),
        [
            ({"a": {1: "x", "1": "z"}}, "data['a']", "a key 1 (int)"),  # json.dumps would keep only 'z'
            ({True: "yes"}, "data", "a key True (bool)"),  # json.dumps would write the key "true"
            ({"a": [0, {None: 1}]}, r"data['a'][1]", "a key None"),
            ({"t": (1, 2)}, "data['t']", "a tuple"),
            ({"s": "\ud800"}, "data['s']", "lone surrogate"),
            ({"\udfff": 1}, "data", "lone surrogate"),
            ({"x": [math.nan]}, "data['x'][0]", "nan"),
            ({"x": 10**5000}, "data['x']", "more than 4300 digits"),
            ({"x": {1, 2}}, "data['x']", "a set"),
        ],
    )
    def test_refusals_name_the_path_to_the_bad_value(self, store, data, where, why):
        with pytest.raises(SerializationError) as info:
            store.append("s", [ev(0), NewEvent("T", data)], 0)
        assert f"events[1] (type 'T') {where} cannot be stored" in str(info.value)
        assert why in str(info.value)
        assert store.head_position() == 0

    def test_deep_nesting_is_refused_not_a_recursion_error(self, store):
        deep: dict = {}
        inner = deep
        for _ in range(5000):
            inner["a"] = inner = {}
        with pytest.raises(SerializationError, match=f"nested more than {MAX_DEPTH} levels deep"):
            store.append("s", [NewEvent("T", deep)], 0)
        ok: dict = {}
        inner = ok
        for _ in range(MAX_DEPTH - 1):
            inner["a"] = inner = {}
        store.append("s", [NewEvent("T", ok)], 0)
        assert store.read("s")[0].data == ok

    # ------------------------------------------------------------ damaged rows
    def insert_raw(self, store, rows: list[tuple[str, int, str]]) -> None:
        """Put rows ``(stream_id, version, data_text)`` into the store behind its back."""
        raise NotImplementedError

    def test_corrupt_rows_are_parsed_alone_and_reported(self, store):
        store.append("s", [ev(1)], 0)
        # Glued together these two halves and this pair would read as {"x": [1, 2]}, {"a": 1}, {"b": 2}.
        self.insert_raw(store, [("s", 2, '{"x":[1'), ("s", 3, "2]}"), ("s", 4, '{"a":1},{"b":2}')])
        for read in (lambda: store.read("s"), store.read_all, lambda: store.read_payloads("s")):
            with pytest.raises(CorruptEventError, match="event at position 2 is not JSON") as info:
                read()
            assert '{"x":[1' in str(info.value) and "backup" in str(info.value)
        assert store.read("s", to_version=1)[0].data == {"n": 1}  # the good row still reads

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ('{"a":1},{"b":2}', "is not JSON"),
            ("[1, 2]", "is a JSON list, not an object"),
            ("7", "is a JSON int"),
        ],
    )
    def test_a_row_that_is_not_one_json_object_is_reported(self, store, text, problem):
        store.append("s", [ev(1)], 0)
        self.insert_raw(store, [("s", 2, text)])
        with pytest.raises(CorruptEventError, match=f"position 2 {problem}"):
            store.read_all()

    def test_whitespace_around_a_stored_object_is_not_damage(self, store):
        self.insert_raw(store, [("s", 1, ' {"b": null} '), ("s", 2, '{"c":[1,2]}')])
        assert [r.data for r in store.read("s")] == [{"b": None}, {"c": [1, 2]}]

    # ------------------------------------------------------------ a closed store
    def test_a_closed_store_says_so(self, tmp_path):
        s = self.make_store(tmp_path)
        s.append("s", [ev(1)], 0)
        s.close()
        calls = [
            lambda: s.append("s", [ev(2)], 1),
            lambda: s.read("s"),
            lambda: s.read_payloads("s"),
            s.read_all,
            lambda: s.stream_info("s"),
            lambda: s.stream_version("s"),
            lambda: s.set_stream_metadata("s", {}),
            s.stream_ids,
            s.head_position,
            s.check_invariants,
        ]
        for call in calls:
            with pytest.raises(StoreClosedError, match="is closed; open the store again"):
                call()
        s.close()  # closing twice is harmless

    def test_stale_writer_gets_conflict_with_both_versions(self, store):
        store.append("s", [ev(1), ev(2), ev(3)], 0)
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", [ev(4)], expected_version=1)
        assert (info.value.stream_id, info.value.expected, info.value.actual) == ("s", 1, 3)
        assert [r.data["n"] for r in store.read("s")] == [1, 2, 3]

    def test_creating_an_existing_stream_conflicts(self, store):
        store.append("s", [ev(1)], 0)
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", [ev(2)], 0)
        assert (info.value.expected, info.value.actual) == (0, 1)

    def test_expecting_a_version_the_stream_never_reached_conflicts(self, store):
        store.append("s", [ev(1)], 0)
        with pytest.raises(ConcurrencyError) as info:
            store.append("s", [ev(2)], 5)
        assert (info.value.expected, info.value.actual) == (5, 1)
        with pytest.raises(ConcurrencyError) as info:
            store.append("new", [ev(2)], 2)
        assert (info.value.expected, info.value.actual) == (2, 0)
        assert store.stream_version("new") == 0 and store.head_position() == 1

    def test_conflicting_batch_writes_nothing_and_leaves_no_gap(self, store):
        store.append("s", [ev(1)], 0)
        with pytest.raises(ConcurrencyError):
            store.append("s", [ev(2), ev(3), ev(4)], 0)
        assert store.head_position() == 1
        recorded = store.append("t", [ev(5)], 0)
        assert recorded[0].position == 2  # the failed batch consumed no positions

    def test_bad_event_in_the_middle_of_a_batch_writes_nothing(self, store):
        batch = [ev(1), NewEvent("Bad", {"s": {1, 2}}), ev(3)]
        with pytest.raises(SerializationError, match=r"events\[1\].*'Bad'"):
            store.append("s", batch, 0)
        assert store.head_position() == 0 and store.stream_version("s") == 0

    @pytest.mark.parametrize(
        "data",
        [
            {"x": {1, 2}},
            {"x": object()},
            {"x": math.nan},
            {"x": math.inf},
            {1: "int key"},
            ["not", "a", "dict"],
            b"{}",
        ],
    )
    def test_non_json_events_are_refused_with_a_type_error(self, store, data):
        with pytest.raises(SerializationError) as info:
            store.append("s", [NewEvent("T", data)], 0)
        assert isinstance(info.value, TypeError)
        assert "events[0]" in str(info.value)

    def test_non_json_metadata_is_refused(self, store):
        with pytest.raises(SerializationError, match="metadata"):
            store.append("s", [NewEvent("T", {}, metadata={"when": object()})], 0)

    @pytest.mark.parametrize(
        ("kwargs", "exc", "match"),
        [
            ({"expected_version": -1}, ValueError, "expected_version must be an int >= 0"),
            ({"expected_version": 1.0}, TypeError, "expected_version must be an int"),
            ({"expected_version": True}, TypeError, "expected_version must be an int"),
            ({"stream_id": ""}, ValueError, "stream_id"),
            ({"stream_id": 7}, TypeError, "stream_id"),
            ({"events": []}, ValueError, "empty batch"),
            ({"events": ev(1)}, TypeError, "single NewEvent"),
            ({"events": [{"type": "T"}]}, TypeError, r"events\[0\] must be a NewEvent"),
            ({"events": [NewEvent("", {})]}, ValueError, "type must be a non-empty str"),
            (
                {"events": [NewEvent("T", {}, schema_version=0)]},
                ValueError,
                "schema_version must be an int >= 1",
            ),
        ],
    )
    def test_append_validates_its_arguments(self, store, kwargs, exc, match):
        args = {"stream_id": "s", "events": [ev(1)], "expected_version": 0, **kwargs}
        with pytest.raises(exc, match=match):
            store.append(args["stream_id"], args["events"], args["expected_version"])
        assert store.head_position() == 0

    # --------------------------------------------------------------- reading
    def test_read_ranges(self, store):
        store.append("s", [ev(i) for i in range(1, 8)], 0)
        assert [r.version for r in store.read("s")] == list(range(1, 8))
        assert [r.version for r in store.read("s", from_version=3)] == [4, 5, 6, 7]
        assert [r.version for r in store.read("s", from_version=2, to_version=4)] == [3, 4]
        assert [r.version for r in store.read("s", to_version=0)] == []
        assert store.read("s", from_version=7) == [] and store.read("s", from_version=99) == []

    def test_read_payloads_is_read_without_the_record_objects(self, store):
        store.append("s", [ev(i) for i in range(1, 6)], 0)
        store.append("t", [NewEvent("Other", {"x": [1, {"y": None}]}, schema_version=4)], 0)
        for stream, lo, hi in (("s", 0, None), ("s", 2, 4), ("s", 5, None), ("t", 0, None)):
            expected = [(r.type, r.data, r.schema_version, r.position) for r in store.read(stream, lo, hi)]
            assert store.read_payloads(stream, lo, hi) == expected
        with pytest.raises(StreamNotFoundError):
            store.read_payloads("ghost")
        with pytest.raises(ValueError, match="to_version must be an int >= 3"):
            store.read_payloads("s", 3, 2)

    def test_read_validates(self, store):
        store.append("s", [ev(1)], 0)
        with pytest.raises(ValueError, match="from_version must be an int >= 0"):
            store.read("s", from_version=-1)
        with pytest.raises(ValueError, match="to_version must be an int >= 3"):
            store.read("s", from_version=3, to_version=2)
        with pytest.raises(ValueError, match="from_position must be an int >= 0"):
            store.read_all(-1)
        with pytest.raises(ValueError, match="limit must be an int >= 1"):
            store.read_all(0, limit=0)

    def test_unknown_streams_are_named_in_the_error(self, store):
        with pytest.raises(StreamNotFoundError, match="'ghost' does not exist"):
            store.read("ghost")
        with pytest.raises(StreamNotFoundError):
            store.read("ghost", from_version=3)
        with pytest.raises(StreamNotFoundError):
            store.stream_info("ghost")
        with pytest.raises(StreamNotFoundError):
            store.set_stream_metadata("ghost", {"a": 1})
        assert store.stream_version("ghost") == 0

    def test_read_all_is_the_global_order_and_resumes_from_a_checkpoint(self, store):
        store.append("a", [ev(1), ev(2)], 0)
        store.append("b", [ev(3)], 0)
        store.append("a", [ev(4)], 2)
        store.append("c", [ev(5), ev(6)], 0)
        everything = store.read_all()
        assert [r.data["n"] for r in everything] == [1, 2, 3, 4, 5, 6]
        assert [r.position for r in everything] == [1, 2, 3, 4, 5, 6]
        collected, checkpoint = [], 0
        while batch := store.read_all(checkpoint, limit=4):
            collected += batch
            checkpoint = batch[-1].position
        assert collected == everything
        assert store.read_all(6) == [] and store.read_all(100) == []

    def test_stream_info_and_metadata(self, store):
        store.append("a", [ev(1)], 0)
        store.append("b", [ev(2)], 0)
        store.append("a", [ev(3), ev(4)], 1)
        info = store.stream_info("a")
        assert (info.version, info.first_position, info.last_position, info.metadata) == (3, 1, 4, {})
        store.set_stream_metadata("a", {"aggregate_type": "Account"})
        assert store.stream_info("a").metadata == {"aggregate_type": "Account"}
        assert store.stream_ids() == ["a", "b"]
        with pytest.raises(SerializationError):
            store.set_stream_metadata("a", {"x": object()})

    def test_stream_metadata_is_written_with_the_first_batch_or_not_at_all(self, store):
        store.append("a", [ev(1)], 0, stream_metadata={"aggregate_type": "Account"})
        assert store.stream_info("a").metadata == {"aggregate_type": "Account"}
        with pytest.raises(ConcurrencyError):
            store.append("a", [ev(2)], 0, stream_metadata={"aggregate_type": "Other"})
        assert store.stream_info("a").metadata == {"aggregate_type": "Account"}
        with pytest.raises(ValueError, match="only allowed when creating"):
            store.append("a", [ev(2)], 1, stream_metadata={})
        with pytest.raises(SerializationError):
            store.append("b", [ev(2)], 0, stream_metadata={"x": object()})
        assert store.stream_ids() == ["a"]

    def test_history_cannot_be_changed_through_returned_or_passed_dicts(self, store):
        data = {"items": [1, 2]}
        recorded = store.append("s", [NewEvent("T", data)], 0)
        data["items"].append(3)
        recorded[0].data["items"].append(4)
        store.read("s")[0].data["items"].append(5)
        assert store.read("s")[0].data == {"items": [1, 2]}

    # ------------------------------------------------------------ concurrency
    def test_threads_racing_on_one_stream_lose_nothing(self, store):
        n_threads, per_thread = 4, 25
        conflicts = []

        def writer(w: int) -> None:
            for i in range(per_thread):
                while True:
                    v = store.stream_version("shared")
                    try:
                        store.append("shared", [NewEvent("W", {"w": w, "i": i})], v)
                        break
                    except ConcurrencyError as exc:
                        assert exc.actual > exc.expected
                        conflicts.append(1)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sorted((r.data["w"], r.data["i"]) for r in store.read("shared"))
        assert got == [(w, i) for w in range(n_threads) for i in range(per_thread)]

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors],
    )
    @given(
        ops=st.lists(
            st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(1, 3), st.integers(-1, 1)),
            min_size=1,
            max_size=25,
        )
    )
    def test_matches_a_list_model_under_random_appends(self, tmp_path_factory, ops):
        """Random appends, some with a wrong expected version, against a plain-list model."""
        store = self.make_store(tmp_path_factory.mktemp("model"))
        model: dict[str, list[int]] = {}
        log: list[tuple[str, int]] = []
        for k, (stream, size, skew) in enumerate(ops):
            current = len(model.get(stream, []))
            expected = max(0, current + skew)
            batch = [NewEvent("E", {"k": k, "j": j}) for j in range(size)]
            if expected == current:
                store.append(stream, batch, expected)
                model.setdefault(stream, []).extend(range(size))
                log += [(stream, k)] * size
            else:
                with pytest.raises(ConcurrencyError) as info:
                    store.append(stream, batch, expected)
                assert (info.value.expected, info.value.actual) == (expected, current)
        assert [(r.stream_id, r.data["k"]) for r in store.read_all()] == log
        for stream, events in model.items():
            assert [r.version for r in store.read(stream)] == list(range(1, len(events) + 1))
        store.check_invariants()
        store.close()


def test_decode_rows_parses_each_row_alone():
    from labkit.eventstore.recorder import decode_rows

    good = (1, "s", 1, "T", '{"a":[1,2]}', 1, "{}")
    assert [r.data for r in decode_rows([good, (2, "s", 2, "T", ' {"b":null} ', 1, '{"m":1}')])] == [
        {"a": [1, 2]},
        {"b": None},
    ]
    with pytest.raises(CorruptEventError, match="position 2"):  # two objects in one row
        decode_rows([good, (2, "s", 2, "T", '{"b":1},{"c":2}', 1, "{}")])
    with pytest.raises(CorruptEventError, match="position 2"):
        decode_rows([good, (2, "s", 2, "T", "{not json", 1, "{}")])
    with pytest.raises(CorruptEventError, match="stored metadata of the event at position 1"):
        decode_rows([(1, "s", 1, "T", "{}", 1, "{oops")])
    # Halves that a joined parse would glue into one valid object, with a pair making up the count.
    halves = [(2, "s", 2, "T", '{"x":[[1', 1, "{}"), (3, "s", 3, "T", "2]]}", 1, "{}")]
    with pytest.raises(CorruptEventError, match="position 2"):
        decode_rows([good, *halves, (4, "s", 4, "T", '{"a":1}],[{"b":2}', 1, "{}")])


class TestInMemoryEventStore(EventStoreContract):
    def make_store(self, tmp_path) -> EventStore:
        return InMemoryEventStore()

    def insert_raw(self, store, rows):
        for stream_id, version, text in rows:
            row = (len(store._rows) + 1, stream_id, version, "T", text, 1, "{}")
            store._rows.append(row)
            store._streams.setdefault(stream_id, []).append(row)
            store._stream_metadata.setdefault(stream_id, "{}")


class SQLiteRaw:
    def insert_raw(self, store, rows):
        for stream_id, version, text in rows:
            head = store.head_position()
            store._conn.execute(
                "INSERT INTO events VALUES (?, ?, ?, 'T', ?, 1, '{}')", (head + 1, stream_id, version, text)
            )


class TestSQLiteEventStore(SQLiteRaw, EventStoreContract):
    def make_store(self, tmp_path) -> EventStore:
        return SQLiteEventStore(tmp_path / "events.db")

    def test_a_path_that_cannot_be_opened_names_the_path_and_what_to_do(self, tmp_path):
        missing = tmp_path / "no-such-folder" / "e.db"
        with pytest.raises(StoreOpenError, match="no-such-folder.*Check that its folder exists"):
            SQLiteEventStore(missing)
        (tmp_path / "notes.txt").write_text("not a database, just text " * 100)
        with pytest.raises(StoreOpenError, match="notes.txt.*is an SQLite database"):
            SQLiteEventStore(tmp_path / "notes.txt")
        with pytest.raises(StoreOpenError, match="cannot open"):
            SQLiteEventStore(tmp_path)  # a folder

    def test_events_survive_closing_and_reopening(self, tmp_path):
        with SQLiteEventStore(tmp_path / "e.db") as s:
            s.append("s", [ev(1), ev(2)], 0)
            s.set_stream_metadata("s", {"k": "v"})
        with SQLiteEventStore(tmp_path / "e.db") as s:
            assert [r.data["n"] for r in s.read("s")] == [1, 2]
            assert s.stream_info("s").metadata == {"k": "v"}
            assert s.append("s", [ev(3)], 2)[0].position == 3

    @pytest.mark.parametrize(("durability", "level"), [(Durability.FULL, 2), (Durability.NORMAL, 1)])
    def test_wal_mode_and_durability_setting(self, tmp_path, durability, level):
        with SQLiteEventStore(tmp_path / "e.db", durability) as s:
            assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == level
        with pytest.raises(TypeError, match="durability must be a Durability"):
            SQLiteEventStore(tmp_path / "f.db", "FULL")

    def test_the_database_itself_refuses_a_second_event_at_the_same_version(self, tmp_path):
        with SQLiteEventStore(tmp_path / "e.db") as s:
            s.append("s", [ev(1)], 0)
        raw = sqlite3.connect(tmp_path / "e.db")
        with pytest.raises(sqlite3.IntegrityError, match="stream_id, events.version"):
            raw.execute("INSERT INTO events VALUES (2, 's', 1, 'T', '{}', 1, '{}')")
        raw.close()

    def test_a_stale_writer_is_stopped_by_the_uniqueness_constraint(self, tmp_path):
        """No read-then-write: the conflict comes from the INSERT failing inside the transaction."""
        seen = []

        class Spy(SQLiteEventStore):
            def _insert_rows(self, cur, rows):
                try:
                    super()._insert_rows(cur, rows)
                except sqlite3.IntegrityError as exc:
                    seen.append(str(exc))
                    raise

        with Spy(tmp_path / "e.db") as s:
            s.append("s", [ev(1), ev(2)], 0)
            with pytest.raises(ConcurrencyError) as info:
                s.append("s", [ev(3)], 1)
            assert (info.value.expected, info.value.actual) == (1, 2)
        assert seen and "UNIQUE" in seen[0]

    def test_two_connections_on_one_file(self, tmp_path):
        a, b = SQLiteEventStore(tmp_path / "e.db"), SQLiteEventStore(tmp_path / "e.db")
        a.append("s", [ev(1)], 0)
        with pytest.raises(ConcurrencyError):
            b.append("s", [ev(2)], 0)
        b.append("s", [ev(2)], 1)
        assert [r.data["n"] for r in a.read("s")] == [1, 2]
        a.close()
        b.close()


class TestSQLiteInMemoryDatabase(SQLiteRaw, EventStoreContract):
    """The same backend on ``:memory:`` (no WAL, no file)."""

    def make_store(self, tmp_path) -> EventStore:
        return SQLiteEventStore(":memory:")
