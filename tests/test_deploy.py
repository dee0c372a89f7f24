"""The deploy files stay coherent with the code: Docker Compose, Helm chart, Grafana dashboard.

No Docker engine or Helm binary runs here, so these tests check what can go
wrong silently: every ``varpulis`` command line in the files parses with the
real CLI, keys and addresses agree between coordinator and workers, every
metric the dashboard charts is one the coordinator or a worker exports, and
the environment variables the chart sets are ones the CLI reads.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from varpulis.cli import build_parser

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
COMPOSE = DEPLOY / "docker" / "docker-compose.cluster.yml"
CHART = DEPLOY / "helm" / "varpulis-cluster"


def _defaults(text: str) -> str:
    """``${VAR:-default}`` → ``default`` (what compose substitutes with an empty env)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(_defaults(COMPOSE.read_text()))


def _varpulis_services(compose: dict[str, Any]) -> dict[str, argparse.Namespace]:
    parser = build_parser()
    return {
        name: parser.parse_args(service["command"])
        for name, service in compose["services"].items()
        if service.get("image", "").startswith("varpulis")
    }


def test_compose_command_lines_parse_and_agree(compose: dict[str, Any]) -> None:
    parsed = _varpulis_services(compose)
    coordinator = parsed.pop("coordinator")
    assert coordinator.command == "coordinator" and coordinator.port == 9100
    assert coordinator.api_key == "admin" and coordinator.worker_key == "test"
    assert sorted(parsed) == [f"worker-{i}" for i in range(4)]
    for name, worker in parsed.items():
        assert worker.command == "server"
        assert worker.coordinator == f"http://coordinator:{coordinator.port}"
        assert worker.worker_id == name
        assert worker.advertise_address == f"http://{name}:{worker.port}"
        # the key a worker presents (its own) is one the coordinator accepts from the network
        assert (worker.coordinator_key or worker.api_key) == coordinator.worker_key
        assert worker.metrics
        published = compose["services"][name]["ports"]
        assert published == [f"{worker.port}:{worker.port}"]


def test_prometheus_scrapes_every_member(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "docker" / "prometheus.yml").read_text())
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}  # fmt: skip
    members = {f"{name}:{args.port}" for name, args in _varpulis_services(compose).items()}
    assert targets == members


def _template_args(path: Path) -> list[list[str]]:
    """The ``args:`` lists of a chart template, rendered with values.yaml (release ``rel``)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def render(match: re.Match[str]) -> str:
        expr = match.group(1).strip()
        if expr.startswith("include"):
            return "rel"
        node: Any = {"Values": values}
        for key in expr.lstrip(".").split("."):
            node = node[key]
        return str(node)

    blocks = []
    for block in re.findall(r"args:\n((?:\s+- .*\n|\s+\{\{-.*\n)+)", path.read_text()):
        lines = [line.strip() for line in block.splitlines()]
        items = [re.sub(r"\{\{\s*([^}]+?)\s*\}\}", render, line[2:])
                 for line in lines if line.startswith("- ")]  # fmt: skip
        blocks.append(items)
    return blocks


@pytest.mark.parametrize("template, command", [("coordinator.yaml", "coordinator"),
                                               ("workers.yaml", "server")])  # fmt: skip
def test_helm_args_parse_with_the_cli(template: str, command: str) -> None:
    (args,) = _template_args(CHART / "templates" / template)
    args = [a.replace("$(POD_NAME)", "rel-worker-0").replace("$(POD_NAMESPACE)", "ns")
            for a in args]  # fmt: skip
    parsed = build_parser().parse_args(args)
    assert parsed.command == command
    if command == "server":
        assert parsed.coordinator == "http://rel-coordinator:9100"
        assert parsed.worker_id == "rel-worker-0"
        assert parsed.advertise_address.startswith("http://rel-worker-0.rel-worker.ns.svc")


def _envvars(parser: argparse.ArgumentParser, command: str) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {getattr(a, "envvar", None) for a in sub.choices[command]._actions} - {None}


def test_helm_env_variables_are_read_by_the_cli() -> None:
    parser = build_parser()
    for template, command in (("coordinator.yaml", "coordinator"), ("workers.yaml", "server")):
        text = (CHART / "templates" / template).read_text()
        names = set(re.findall(r"- name: (VARPULIS_\w+)", text)) - {"VARPULIS_PORT"}
        assert names and names <= _envvars(parser, command), (template, names)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["workers"]["replicas"] == 4 and "apiKey" in values["coordinator"]


def test_dashboard_charts_only_exported_metrics(tmp_path: Path) -> None:
    from varpulis.cluster import CoordinatorConfig, start_coordinator
    from varpulis.server import ServerConfig, start_worker

    dashboard = json.loads((DEPLOY / "docker/grafana/dashboards/varpulis-cluster.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    charted = {m for e in exprs for m in re.findall(r"\b(varpulis_\w+)", e)}
    worker = start_worker(ServerConfig(port=0, metrics=True))
    coordinator = start_coordinator(CoordinatorConfig(port=0))
    try:
        exported = ""
        for url in (worker.url, coordinator.url):
            exported += requests.get(f"{url}/metrics", timeout=10).text
    finally:
        worker.close()
        coordinator.close()
    names = set(re.findall(r"^# TYPE (\w+) (\w+)", exported, re.M))
    available = {n for n, _ in names} | {f"{n}_total" for n, kind in names if kind == "counter"}
    assert charted and charted <= available, charted - available
