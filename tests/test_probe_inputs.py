"""The hostile-input probe (analyses/probe_inputs.py): crafted files run no code, nothing hangs, and each
outcome is classified as what it is."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
from analysis_scripts import load_analysis

from workbench.errors import ConfigError


def _load_probe():
    return load_analysis("probe_inputs")


probe = _load_probe()


def test_the_quick_probe_runs_no_code_and_nothing_hangs(tmp_path):
    cases = [case for case in probe.all_cases() if case.quick]
    markers = [case for case in cases if case.marker]
    assert len(markers) >= 6 and {case.category for case in cases} == set(probe.CATEGORIES)
    results = probe.run_cases(cases, limit=60, root=tmp_path)
    assert len(results) == len(cases)
    statuses = {f"{r.category}/{r.name}": r.status for r in results}
    assert "RAN CODE" not in statuses.values() and "hang" not in statuses.values(), statuses
    # every crafted file is refused with a clear error (none is accepted, none crashes the loader)
    assert all(statuses[f"{case.category}/{case.name}"] == "clean" for case in markers), statuses
    assert list(tmp_path.iterdir()) == []  # the probe's folder is deleted


def _raise(exc: BaseException):
    def run(ctx):
        raise exc

    return run


def _craft(ctx):
    ctx.marker.mkdir()  # as a crafted file that ran code would
    raise ConfigError("refused, but too late")


def _print_traceback(ctx):
    print("Traceback (most recent call last):\n  ...\nValueError: boom", file=sys.stderr)
    return 1


def test_outcomes_are_classified(tmp_path):
    Case = probe.Case
    cases = [
        Case("api", "raw", lambda ctx: 1 / 0),
        Case("api", "raw key", _raise(KeyError("x"))),
        Case("api", "workbench error", _raise(ConfigError("bad value; give a good one."))),
        Case("api", "accepted", lambda ctx: 42),
        Case("api", "handled", lambda ctx: probe.Handled("warned")),
        Case("api", "printed traceback", _print_traceback),
        Case("api", "hang", lambda ctx: time.sleep(20)),
        Case("data", "ran code", _craft, marker=True),
        Case("data", "marker, refused", _raise(ConfigError("refused")), marker=True),
        Case("cli", "argparse error", lambda ctx: ["frobnicate"], cli=True),
        Case("cli", "workbench error", lambda ctx: ["profile", "--model", "lenet6", "--no-latency"], cli=True),
        Case("cli", "exit 0", lambda ctx: ["models"], cli=True),
    ]
    start = time.perf_counter()
    results = probe.run_cases(cases, limit=1.0, root=tmp_path)
    assert time.perf_counter() - start < 15  # the sleeping case was cut short
    got = {r.name: r for r in results}
    expected = {
        "raw": "traceback",
        "raw key": "traceback",
        "workbench error": "clean",
        "accepted": "accepted",
        "handled": "clean",
        "printed traceback": "traceback",
        "hang": "hang",
        "ran code": "RAN CODE",
        "marker, refused": "clean",
        "argparse error": "clean",
        "exit 0": "accepted",
    }
    assert {name: got[name].status for name in expected} == expected
    assert got["raw"].detail.startswith("ZeroDivisionError: division by zero")
    assert "lenet6" in [r for r in results if r.category == "cli" and r.name == "workbench error"][0].detail
    summary = probe.summarize(results)
    assert summary["api"] == {"cases": 7, "clean": 2, "traceback": 3, "accepted": 1, "hang": 1, "RAN CODE": 0}
    assert summary["total"]["cases"] == len(cases) and summary["total"]["RAN CODE"] == 1
    report = probe.format_report(results)
    assert "!!! RAN CODE" in report and "api/raw" in report and "api/handled" not in report
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the memory cap uses RLIMIT_AS")
def test_an_allocation_past_the_cap_fails_in_the_case_not_the_machine(tmp_path):
    case = probe.Case("api", "8 GB", lambda ctx: np.ones(2**33, dtype=np.uint8).sum())
    (result,) = probe.run_cases([case], headroom=2**28, root=tmp_path)
    assert result.status == "traceback" and "MemoryError" in result.detail
    assert np.ones(2**20, dtype=np.uint8).sum() == 2**20  # the cap is lifted afterwards


def test_the_command_prints_json_and_exits_0(capsys):
    assert probe.main(["--quick", "--only", "checkpoints,data", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["summary"]) == {"checkpoints", "data", "total"}
    assert payload["ran_code"] == [] and payload["summary"]["total"]["cases"] == len(payload["cases"])
    assert {case["category"] for case in payload["cases"]} == {"checkpoints", "data"}
