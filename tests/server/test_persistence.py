"""--state-dir: atomic saves, restore, and a corrupt file moved aside."""

from __future__ import annotations

import json
from pathlib import Path

from tests.server.conftest import TUTORIAL_A, Api
from varpulis.server.persistence import STATE_FILE, StateStore


def test_save_load_roundtrip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    assert store.load() == []
    records = [{"id": "a", "name": "n", "source": "s", "deployed_at_ns": 1}]
    store.save(records)
    assert store.load() == records
    store.save([])
    assert store.load() == []
    assert [p.name for p in (tmp_path / "state").iterdir()] == [STATE_FILE]


def test_stray_temp_and_corrupt_file(tmp_path: Path) -> None:
    (tmp_path / ".pipelines-abc").write_text("{half")
    (tmp_path / STATE_FILE).write_text('{"version": 1, "pipel')
    store = StateStore(tmp_path)
    assert store.load() == []
    assert not (tmp_path / ".pipelines-abc").exists()
    assert (tmp_path / f"{STATE_FILE}.corrupt").read_text().startswith("{")


def test_worker_restart_keeps_pipelines_and_ids(start, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    first = start(state_dir=state)
    api = Api(first.url)
    keep, drop = api.deploy(TUTORIAL_A, "keep"), api.deploy(TUTORIAL_A, "drop")
    new = 'stream A = EventA .emit(result: "reloaded")'
    assert api.post(f"/api/v1/pipelines/{keep}/reload", json={"source": new}).ok
    assert api.delete(f"/api/v1/pipelines/{drop}").ok
    saved = json.loads((tmp_path / "state" / STATE_FILE).read_text())
    assert [p["id"] for p in saved["pipelines"]] == [keep]
    first.close()
    second = Api(start(state_dir=state).url)
    listed = second.get("/api/v1/pipelines").json()["pipelines"]
    assert [(p["id"], p["name"], p["source"]) for p in listed] == [(keep, "keep", new)]
    out = second.post(f"/api/v1/pipelines/{keep}/events", json={"event_type": "EventA"}).json()
    assert out["output_events"] == [{"event_type": "A", "result": "reloaded"}]
