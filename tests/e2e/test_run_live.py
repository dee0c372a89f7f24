"""``varpulis run PROGRAM`` reading MQTT with .from(...) as a real process."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from paho.mqtt import client as paho

pytestmark = pytest.mark.e2e


def _lines(proc: subprocess.Popen) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(json.loads(line))

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_run_reads_mqtt_until_interrupted(broker, tmp_path: Path) -> None:  # noqa: ANN001
    program = tmp_path / "live.vpl"
    program.write_text(
        f'connector Broker = mqtt (host: "{broker.host}", port: {broker.port}, client_id: "t")\n'
        "stream Hot = Reading\n"
        '    .from(Broker, topic: "sensors/#")\n'
        "    .where(t > 30)\n"
        "    .emit(id: id, t: t)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "varpulis", "run", str(program)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines = _lines(proc)
    publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="test-pub")
    publisher.connect(broker.host, broker.port)
    publisher.loop_start()
    try:
        # messages published before the subscription is live are lost: probe until one is seen
        deadline = time.monotonic() + 20
        seen = None
        while seen is None and time.monotonic() < deadline:
            publisher.publish("sensors/Reading", json.dumps({"id": "probe", "t": 35}))
            try:
                seen = lines.get(timeout=0.2)
            except queue.Empty:
                continue
        assert seen == {"event_type": "Hot", "id": "probe", "t": 35}, proc.stderr
        publisher.publish("sensors/Reading", json.dumps({"id": "cold", "t": 3}))
        publisher.publish("sensors/Reading", json.dumps({"id": "b", "t": 40})).wait_for_publish(5)
        got = lines.get(timeout=10)
        while got["id"] == "probe":  # late echoes of the probing
            got = lines.get(timeout=10)
        assert got == {"event_type": "Hot", "id": "b", "t": 40}
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert err.strip().splitlines()[-1].startswith("processed ")
