"""deploy/prometheus/alerts.yml: valid rules whose promtool unit tests pass, over the very
families GET /metrics exposes."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests import tools
from tests.processes import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yml"


@pytest.fixture
def promtool() -> str:
    return tools.requires_tool("promtool")[0]


def test_the_rules_are_valid(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rule_unit_tests_pass(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULE_TESTS.parent,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_the_issue_names_is_there():
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }

    assert alerts == {
        "PluggedinMaintenanceTargetDown",
        "PluggedinMaintenanceTaskStale",
        "PluggedinMaintenanceLastRunFailed",
        "PluggedinMaintenanceBacklogGrowing",
        "PluggedinMaintenanceEmailsFailed",
    }


@pytest.mark.django_db
def test_the_rules_use_only_families_and_kinds_that_metrics_exposes(client, auth_header):
    families = list(
        text_string_to_metric_families(client.get("/metrics", **auth_header).content.decode())
    )
    exposed = {family.name for family in families}
    exposed |= {sample.name for family in families for sample in family.samples}
    kinds = {
        sample.labels["kind"]
        for family in families
        for sample in family.samples
        if "kind" in sample.labels
    }
    exprs = [
        rule["expr"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    ]

    used = {name for expr in exprs for name in re.findall(r"pluggedin_maintenance_\w+", expr)}
    assert used and used <= exposed
    assert {kind for expr in exprs for kind in re.findall(r'kind!?="(\w+)"', expr)} <= kinds
