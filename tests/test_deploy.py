"""deploy/: the alert rules pass promtool's checks and their unit tests, and the dashboard and the
rules ask only for metrics a worker really exports.

promtool comes from Debian's `prometheus` package (`.ci/run` installs it): without it the promtool
tests skip, except under CI, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from worker.observe import liveness
from worker.observe import metrics as worker_metrics
from worker.observe.collectors import SharedState
from worker.push import pause
from worker.settings import load_settings
from worker.store import keys
from worker.windows.coalesce import Coalescer

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "pushsync.json"
SCRAPE_METRICS = frozenset({"up"})
"""What Prometheus itself records for each scrape, which the rules may use beside pushsync's."""
SAMPLE_SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum", "_created")}
"""The series names a metric family of each type is exposed under."""
METRIC_NAME = re.compile(r"\b(pushsync_[a-z0-9_]+|up)\b(?!\s*\()")
"""A metric name in PromQL: pushsync's, or `up` (not a function such as `absent(`)."""
SHOWN = {"pushsync_events_received_total", "pushsync_items_pushed_total", "pushsync_oldest_buffered_event_age_seconds",
         "pushsync_dead_letter_entries", "pushsync_quarantine_entries", "pushsync_target_paused",
         "pushsync_events_backlog", "pushsync_beat_last_sweep_age_seconds", "up"}
"""What the dashboard must show: events in and items pushed, oldest buffered age, dead letters,
quarantine, paused targets, broker backlog, beat's last sweep, workers up."""


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        message = "promtool is not installed (Debian's `prometheus` package; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI requires it")
        pytest.skip(message)
    return found


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def used(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


def series_names(text: str) -> set[str]:
    """The series names an exposition `text` holds, those of metric families without samples yet included."""
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))}


@pytest.mark.process
def test_the_rules_and_the_example_configuration_pass_promtools_checks():
    for args in (("check", "rules", RULES), ("check", "config", PROMETHEUS_CONFIG)):
        checked = run_promtool(*args)
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.process
def test_every_rule_passes_its_unit_tests():
    tested = run_promtool("test", "rules", RULE_TESTS)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_every_rule_has_a_unit_test_where_it_fires():
    firing = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert firing == {rule["alert"] for rule in rules()}


@pytest.mark.process
def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool has no parser of its own to call: each query becomes a recording rule it checks.
    recorded = tmp_path / "dashboard_rules.yml"
    recorded.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{n}", "expr": expr} for n, expr in enumerate(dashboard_exprs())]}]}))
    checked = run_promtool("check", "rules", recorded)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_and_the_rules_use_only_metrics_a_worker_exports(redis_client, redis_broker_url):
    # Every shared gauge has a value to show: a buffered event, a paused target, a sweep.
    Coalescer(redis_client, load_settings()).add_encoded(
        keys.Target(keys.SOURCE, "docs"), [("https://example.com/1", "1.0", json.dumps({"n": 1}).encode())])
    pause.pause(redis_client, keys.Target(keys.SOURCE, "news"), cause=pause.QUOTA, reason="429", seconds=60)
    liveness.record_sweep(redis_client, "worker-0@host", now=time.time())
    shared = CollectorRegistry()
    shared.register(SharedState(redis_client, redis_broker_url))
    # The per-process metrics as the worker defines them: a family shows before its first value.
    defined = CollectorRegistry()
    for metric in vars(worker_metrics).values():
        if isinstance(metric, MetricWrapperBase):
            defined.register(metric)
    exported = series_names(generate_latest(shared).decode()) | series_names(generate_latest(defined).decode())
    assert {"pushsync_target_paused", "pushsync_events_received_total"} <= exported

    in_rules, on_dashboard = used([rule["expr"] for rule in rules()]), used(dashboard_exprs())
    assert in_rules - exported - SCRAPE_METRICS == set()
    assert on_dashboard - exported - SCRAPE_METRICS == set()
    assert SHOWN <= on_dashboard
