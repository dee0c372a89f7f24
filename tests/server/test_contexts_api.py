"""A pipeline with contexts behind the REST API: wait=true returns every output."""

from __future__ import annotations

from tests.fixtures import CROSS_CONTEXT_CHAIN
from tests.server.conftest import Api

CHAIN = CROSS_CONTEXT_CHAIN


def test_inject_with_wait_returns_outputs_of_every_context(api: Api) -> None:
    pid = api.deploy(CHAIN, name="chain")
    event = {"event_type": "SensorReading", "fields": {"sensor_id": "S1", "temperature": 105.5}}
    r = api.post(f"/api/v1/pipelines/{pid}/events?wait=true", json=event)
    assert r.status_code == 200, r.text
    outputs = r.json()["output_events"]
    assert sorted(outputs, key=lambda o: o["event_type"]) == [
        {"event_type": "Analysis", "alert_sensor": "S1", "alert_temp": 105.5},
        {"event_type": "Filtered", "sensor": "S1", "temp": 105.5},
    ]
    body = {"events": [event, {**event, "fields": {"sensor_id": "S2", "temperature": 75.0}}],
            "wait": True}  # fmt: skip
    r = api.post(f"/api/v1/pipelines/{pid}/events-batch", json=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["output_events"]) == 3
    assert api.delete(f"/api/v1/pipelines/{pid}").json() == {"deleted": True}


def test_inject_without_wait_is_accepted_at_once(api: Api) -> None:
    pid = api.deploy(CHAIN, name="chain")
    event = {"event_type": "SensorReading", "fields": {"sensor_id": "S1", "temperature": 105.5}}
    r = api.post(f"/api/v1/pipelines/{pid}/events", json=event)
    assert r.status_code == 200 and r.json()["accepted"] is True
