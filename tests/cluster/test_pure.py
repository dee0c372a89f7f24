"""Pure decisions: routing patterns, placement, health sweep, spec validation."""

from __future__ import annotations

import pytest

from varpulis.cluster.groups import Group, parse_spec, pipeline_reads
from varpulis.cluster.health import HealthSweeper, health_sweep
from varpulis.cluster.inject import scan_types
from varpulis.cluster.placement import place
from varpulis.cluster.routing import (
    family_type,
    find_route,
    find_target_pipeline,
    forward_targets,
    matches,
)
from varpulis.cluster.workers import Worker, WorkerStatus, parse_heartbeat, parse_registration
from varpulis.errors import BadRequest, InvalidGroupSource, NoWorkersAvailable

# ---------------------------------------------------------------- routing


@pytest.mark.parametrize(
    ("pattern", "event_type", "expected"),
    [
        ("EventA*", "EventA", True),
        ("EventA*", "EventA_foo", True),
        ("EventA*", "EventABC", True),
        ("EventA*", "EventB", False),
        ("SensorReading", "SensorReading", True),
        ("SensorReading", "SensorReadings", False),
        ("*", "anything", True),
        ("*", "", True),
        ("ComputeTile0*", "ComputeTile01", True),
        ("ComputeTile0*", "ComputeTile10", False),
        ("eventa*", "EventA", False),
        ("Ev*A", "EvXA", False),
        ("Ev*A", "Ev*A", True),
    ],
)
def test_pattern_matching(pattern: str, event_type: str, expected: bool) -> None:
    assert matches(pattern, event_type) is expected


ROUTES = [
    ("_external", "a", ["EventA*"]),
    ("_external", "b", ["EventB*", "Other"]),
    ("_external", "c", ["Event*"]),
    ("a", "c", ["A"]),
    ("a", "b", ["A", "X*"]),
]


@pytest.mark.parametrize(
    ("event_type", "target"),
    [
        ("EventA1", "a"),
        ("EventB", "b"),
        ("Other", "b"),
        ("EventZ", "c"),
        ("Nothing", "a"),
        ("A", "a"),
    ],
)
def test_first_external_match_wins_else_first_pipeline(event_type: str, target: str) -> None:
    assert find_target_pipeline(ROUTES, ["a", "b", "c"], event_type) == target


@pytest.mark.parametrize(
    ("pattern", "event_type", "reads", "expected"),
    [
        ("EventB*", "EventB_foo", {"EventB"}, "EventB"),  # the tutorial's Part 5
        ("EventB*", "EventB_foo", {"EventB", "EventB_foo"}, "EventB_foo"),  # read as itself
        ("EventB*", "EventB", {"EventB"}, "EventB"),
        ("EventB*", "EventBX", {"Other"}, "EventBX"),  # the target reads neither: unchanged
        ("EventB", "EventB", {"X"}, "EventB"),  # exact patterns never rename
        ("*", "Anything", {""}, "Anything"),  # a bare * is no family
        (None, "Unrouted", {"U"}, "Unrouted"),  # the first-pipeline default
    ],
)
def test_prefix_routes_deliver_event_families(
    pattern: str | None, event_type: str, reads: set[str], expected: str
) -> None:
    assert family_type(pattern, event_type, reads) == expected


def test_find_route_names_the_matching_pattern() -> None:
    routes = [("_external", "a", ["X", "EventA*"]), ("_external", "b", ["*"])]
    assert find_route(routes, ["a", "b"], "EventA1") == ("a", "EventA*")
    assert find_route(routes, ["a", "b"], "Q") == ("b", "*")
    assert find_route([], ["a"], "Q") == ("a", None)


def test_pipeline_reads_are_the_event_types_not_the_streams() -> None:
    source = "stream B = EventB .emit(x: 1)\nstream C = B .where(x > 0)\nstream D = X -> Y"
    assert pipeline_reads(source) == {"EventB", "X", "Y"}
    assert pipeline_reads("stream = (") == frozenset()


def test_inter_pipeline_routes_do_not_route_injects() -> None:
    # "A" matches the route a→c, which is not an _external route: default = first pipeline.
    assert find_target_pipeline(ROUTES, ["b", "a", "c"], "A") == "b"
    assert find_target_pipeline([], [], "A") is None


def test_forward_targets_fan_out_in_route_order() -> None:
    assert forward_targets(ROUTES, "a", "A") == ["c", "b"]
    assert forward_targets(ROUTES, "a", "X1") == ["b"]
    assert forward_targets(ROUTES, "a", "EventA") == []
    assert forward_targets(ROUTES, "b", "A") == []


# ---------------------------------------------------------------- placement


def _worker(i: int, load: int = 0, max_pipelines: int = 100) -> Worker:
    w = Worker(
        f"worker-{i}", f"http://127.0.0.1:{9000 + i}", "k", seq=i, max_pipelines=max_pipelines
    )
    w.reported_count = load
    return w


def test_round_robin_in_registration_order() -> None:
    workers = [_worker(0), _worker(1)]
    assert place([None] * 4, workers, "round-robin") == ["worker-0", "worker-1"] * 2
    # Every group starts at the first worker: deterministic whatever came before.
    assert place([None] * 3, workers, "round-robin") == ["worker-0", "worker-1", "worker-0"]


def test_affinity_then_fallback_to_strategy() -> None:
    workers = [_worker(0), _worker(1), _worker(2)]
    assert place(["worker-2", None, "gone", None], workers, "round-robin") == [
        "worker-2",
        "worker-0",
        "worker-1",
        "worker-2",
    ]


def test_least_loaded_counts_the_group_itself() -> None:
    workers = [_worker(0, load=3), _worker(1, load=1), _worker(2, load=1)]
    assert place([None] * 4, workers, "least-loaded") == [
        "worker-1",
        "worker-2",
        "worker-1",
        "worker-2",
    ]


def test_full_workers_are_skipped_and_no_room_is_503() -> None:
    workers = [_worker(0, load=1, max_pipelines=1), _worker(1, max_pipelines=2)]
    assert place(["worker-0", None], workers, "round-robin") == ["worker-1", "worker-1"]
    with pytest.raises(NoWorkersAvailable):
        place([None] * 3, workers, "round-robin")
    with pytest.raises(NoWorkersAvailable):
        place([None], [], "round-robin")


def test_busy_is_derived_from_load() -> None:
    w = _worker(0, load=2, max_pipelines=2)
    assert w.effective_status is WorkerStatus.BUSY and not w.available
    w.reported_count = 1
    assert w.effective_status is WorkerStatus.READY and w.available
    w.reported, w.placed = {"p1"}, {"p1", "p2"}
    assert w.load == 2 and w.effective_status is WorkerStatus.BUSY


# ---------------------------------------------------------------- health


def test_sweep_marks_only_silent_watched_workers_strictly_after_timeout() -> None:
    ready, busy, registering, draining, unhealthy, fresh = (_worker(i) for i in range(6))
    busy.status = WorkerStatus.BUSY
    registering.status = WorkerStatus.REGISTERING
    draining.status = WorkerStatus.DRAINING
    unhealthy.status = WorkerStatus.UNHEALTHY
    for w in (ready, busy, registering, draining, unhealthy):
        w.last_heartbeat = 100.0
    fresh.last_heartbeat = 110.0
    workers = [ready, busy, registering, draining, unhealthy, fresh]
    assert health_sweep(workers, now=115.0, timeout=15.0) == []  # exactly the timeout: not yet
    assert health_sweep(workers, now=115.01, timeout=15.0) == ["worker-0", "worker-1", "worker-2"]
    assert draining.status is WorkerStatus.DRAINING and fresh.status is WorkerStatus.READY
    assert health_sweep(workers, now=115.02, timeout=15.0) == []  # idempotent


def test_sweeper_thread_calls_sweep_until_stopped() -> None:
    import threading

    calls = threading.Semaphore(0)

    class Fake:
        def sweep(self) -> list[str]:
            calls.release()
            return []

    sweeper = HealthSweeper(Fake(), interval=0.01).start()
    assert all(calls.acquire(timeout=5) for _ in range(3))
    sweeper.stop()
    with pytest.raises(ValueError, match="heartbeat-interval"):
        HealthSweeper(Fake(), interval=0)


# ---------------------------------------------------------------- specs and bodies


def _spec(**over: object) -> dict[str, object]:
    spec = {
        "name": "g",
        "pipelines": [
            {"name": "a", "source": "stream A = X .emit(v: 1)"},
            {"name": "b", "source": "stream B = Y .emit(v: 2)"},
        ],
        "routes": [{"from_pipeline": "_external", "to_pipeline": "b", "event_types": ["Y*"]}],
    }
    spec.update(over)
    return spec


def test_spec_round_trips_and_routes_resolve() -> None:
    spec = parse_spec(_spec())
    assert parse_spec(spec.to_json()) == spec
    group = Group("id", spec)
    assert group.target("Yes") == "b" and group.target("Zed") == "a"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"name": ""}, "name"),
        ({"pipelines": []}, "at least one"),
        ({"pipelines": [{"name": "a", "source": 1}]}, "source"),
        ({"pipelines": [{"name": "a", "source": ""}, {"name": "a", "source": ""}]}, "twice"),
        (
            {"routes": [{"from_pipeline": "_external", "to_pipeline": "zz", "event_types": ["X"]}]},
            "'zz' is not one of",
        ),
        (
            {"routes": [{"from_pipeline": "nope", "to_pipeline": "a", "event_types": ["X"]}]},
            "'nope'",
        ),
        (
            {"routes": [{"from_pipeline": "_external", "to_pipeline": "a", "event_types": []}]},
            "event_types",
        ),
        ({"placement": "random"}, "round-robin"),
    ],
)
def test_malformed_specs_are_400(override: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_spec(_spec(**override))


def test_bad_vpl_names_the_pipeline_with_position() -> None:
    body = _spec(
        pipelines=[
            {"name": "ok", "source": "stream A = X .emit(v: 1)"},
            {"name": "broken", "source": "stream B = Y .emit(v: "},
        ],
        routes=[],
    )
    with pytest.raises(InvalidGroupSource) as info:
        parse_spec(body)
    out = info.value.to_json()
    assert out["pipeline"] == "broken" and out["code"] == "invalid_program"
    assert out["line"] == 1 and out["column"] > 1 and "^" in out["snippet"]
    assert "'broken'" in out["error"]


def test_registration_and_heartbeat_bodies() -> None:
    reg = parse_registration(
        {
            "worker_id": "w",
            "address": "http://h:1/",
            "api_key": "k",
            "capacity": {"cpu_cores": 4, "pipelines_running": 1, "max_pipelines": 5},
            "pipelines": ["p"],
        }
    )
    assert (reg.address, reg.max_pipelines, reg.pipelines) == ("http://h:1", 5, {"p"})
    assert parse_registration({"worker_id": "w", "address": "https://h:1"}).max_pipelines == 100
    for bad in (
        {"worker_id": "", "address": "http://h:1"},
        {"worker_id": "w", "address": "h:1"},
        {"worker_id": "w", "address": "http://h:1", "capacity": {"max_pipelines": -1}},
        {"worker_id": "w", "address": "http://h:1", "pipelines": [1]},
    ):
        with pytest.raises(BadRequest):
            parse_registration(bad)
    beat = parse_heartbeat({"events_processed": 3, "pipelines_running": 1, "pipelines": ["p"]})
    assert beat.pipelines == {"p"} and parse_heartbeat({}).pipelines is None
    with pytest.raises(BadRequest):
        parse_heartbeat({"events_processed": "many"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"events":[{"event_type":"A","fields":{}},{"event_type" : "B"}]}', {"A", "B"}),
        # a nested key counts (a superset is safe); a quoted text inside a string does not
        (
            b'{"events":[{"event_type":"A","fields":{"event_type":"C","s":"\\"event_type\\""}}]}',
            {"A", "C"},
        ),
        (b'{"events":[{"event_type":"A\\u0042"}]}', None),  # escapes: decode instead
        (b'{"events":[{"event_type":5}]}', None),  # not a string: decode (and reject)
        (b'{"events":[]}', None),
        (b'{"events":[{"event_type":"\xff"}]}', None),
    ],
)
def test_scan_types_finds_a_superset_or_gives_up(raw: bytes, expected: set | None) -> None:
    assert scan_types(raw) == expected
