"""The timeline picture (F29): a state's name is drawn whole or not at all (a bar too
narrow for 'APPLYING' showed 'APPLYIN', the rest hidden under the next bar), and every
VM-phase tick has a label unless two crowd one spot (then its tooltip still names it)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ephemera.cli.timeline_svg import PHASE_LABELS, timeline_svg
from ephemera.model.runs import RunRecord, Transition

T0 = datetime(2026, 12, 7, 10, 0, 0).astimezone()


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _run(applying_seconds: float) -> RunRecord:
    states = [
        ("REQUESTED", 0),
        ("APPLYING", 1),
        ("RUNNING", 1 + applying_seconds),
        ("SUCCEEDED", 200),
        ("DESTROYING", 201),
        ("DESTROYED", 210),
    ]
    return RunRecord(
        run_id="r-1",
        workspace="ws",
        engine="terraform",
        state="DESTROYED",
        created_at=_at(0),
        transitions=[Transition(s, _at(t), "test") for s, t in states],
    )


def _labels(svg: str) -> list[str]:
    return re.findall(r'<text x="[\d.]+" y="\d+" fill="#ffffff">([^<]*)</text>', svg)


def test_a_state_label_is_whole_or_absent():
    for applying in (2, 4, 6, 8, 10, 14, 20, 40):
        labels = _labels(timeline_svg(_run(applying), []))
        assert all(label in {"REQUESTED", "APPLYING", "RUNNING", "SUCCEEDED", "DESTROYING", "DESTROYED"} for label in labels)
        assert "RUNNING" in labels  # the long bar always carries its name
    assert "APPLYING" in _labels(timeline_svg(_run(40), []))  # wide enough: drawn
    assert "APPLYING" not in _labels(timeline_svg(_run(4), []))  # 4 s of 210 s is ~16 px: not cut, left out


def test_every_vm_phase_tick_has_a_label_unless_two_crowd_one_spot():
    phases = {
        "booted": _at(10),
        "bundle_installed": _at(40),
        "driver_ready": _at(70),
        "agent_ready": _at(100),
        "first_task": _at(101),
        "last_task": _at(190),
    }
    svg = timeline_svg(_run(8), [{"worker": 0, "phases": phases}])
    labels = re.findall(r'class="phase-label"[^>]*>([^<]*)<', svg)
    assert labels == [PHASE_LABELS[name] for name in phases]  # agent and first task 1 s apart: on two lines
    line_of = {label: y for y, label in re.findall(r'y="(\d+)" font-size="9" fill="#333">([^<]*)<', svg)}
    assert line_of["agent"] != line_of["first task"] and line_of["booted"] == line_of["agent"]


def test_the_title_says_the_outcome_first():
    svg = timeline_svg(_run(8), [])
    assert "r-1: SUCCEEDED (resources DESTROYED)" in svg
