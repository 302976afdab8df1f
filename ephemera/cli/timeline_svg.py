"""A run's timeline as an SVG picture (``ephemera runs show --svg`` and the dashboard).

One row for the run -- a bar per state, coloured by kind (requested, applying,
running, ended, teardown, destroyed, failed) -- and one row per VM: its boot (from
``booted`` to ``agent_ready``), the workload (``first_task`` to ``last_task``) and its
idle time up to the teardown, with a tick per boot phase. The time axis runs from the
run's creation to its destroy confirmation (or now, for an open run). Every text is
escaped; the picture needs no script and no external file.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from ephemera.cli.results import outcome
from ephemera.model.runs import RunRecord, RunState
from ephemera.timeutil import now_utc
from ephemera.vm.reports import PHASES

WIDTH, LEFT, RIGHT, ROW, TOP = 960, 120, 20, 34, 34
COLOURS = {  # state -> fill
    "REQUESTED": "#9aa5b1",
    "APPLYING": "#f0b429",
    "RUNNING": "#2f80ed",
    "SUCCEEDED": "#27ae60",
    "FAILED": "#eb5757",
    "TIMED_OUT": "#eb5757",
    "APPLY_FAILED": "#eb5757",
    "DESTROYING": "#9b51e0",
    "DESTROY_FAILED": "#b00020",
    "DESTROYED": "#4f4f4f",
}
VM_COLOURS = {"boot": "#f2c94c", "workload": "#2f80ed", "idle": "#bdbdbd"}
# the tick labels of the VM phases (ephemera.vm.reports.PHASES), short enough to sit side by side
PHASE_LABELS = {
    "booted": "booted",
    "bundle_installed": "bundle",
    "driver_ready": "driver",
    "agent_ready": "agent",
    "first_task": "first task",
    "last_task": "last task",
}
CHAR_WIDTH = {11: 7.6, 9: 5.6}  # font size -> a conservative width per character (capitals, sans-serif), px


def text_width(text: str, size: int = 11) -> float:
    """How wide ``text`` may be drawn at ``size`` px: a label is drawn only where it fits
    whole (a cut label, 'APPLYIN', reads as a different word)."""
    return len(text) * CHAR_WIDTH[size]


def _t(iso: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None


def timeline_svg(run: RunRecord, vms: list[dict] | None = None, now: datetime | None = None) -> str:
    """The run's timeline as a standalone SVG document."""
    vms = run.vms if vms is None else vms
    start = _t(run.created_at) or now_utc()
    end = _t(run.entered_at(RunState.DESTROYED)) or now or now_utc()
    span = max((end - start).total_seconds(), 1.0)
    scale = (WIDTH - LEFT - RIGHT) / span

    def x(at: datetime) -> float:
        return LEFT + max(0.0, min(span, (at - start).total_seconds())) * scale

    height = TOP + ROW * (1 + len(vms)) + 50
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
        f'font-family="sans-serif" font-size="11" role="img" aria-label="timeline of run {escape(run.run_id)}">',
        f"<title>timeline of run {escape(run.run_id)}</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
        f'<text x="8" y="18" font-size="13" font-weight="bold">{escape(run.run_id)}: {escape(outcome(run))} '
        f'(resources {escape(str(run.state))})</text>',
    ]
    out += _axis(span, scale, height)
    y = TOP
    out.append(f'<text x="8" y="{y + 17}">run</text>')
    transitions = [(t, at) for t in run.transitions if (at := _t(t.at)) is not None]
    for i, (t, at) in enumerate(transitions):
        following = transitions[i + 1][1] if i + 1 < len(transitions) else end
        if t.state == str(RunState.DESTROYED):
            following = at
        x0, x1 = x(at), x(following)
        colour = COLOURS.get(t.state, "#828282")
        out.append(
            f'<rect class="state" data-state="{escape(t.state)}" x="{x0:.1f}" y="{y + 4}" width="{max(x1 - x0, 2):.1f}" '
            f'height="{ROW - 10}" fill="{colour}"><title>{escape(t.state)} at {escape(t.at)}: {escape(t.reason)}</title></rect>'
        )
        if x1 - x0 >= text_width(t.state) + 6:
            out.append(f'<text x="{x0 + 3:.1f}" y="{y + 21}" fill="#ffffff">{escape(t.state)}</text>')
    for p in run.preemptions:  # a red tick on the run's row where each VM was lost
        at = _t(p.notice_at or p.detected_at)
        if at is not None:
            px = x(at)
            tip = f"vm{p.worker} preempted at {p.notice_at or p.detected_at} ({p.source}: {p.why}); paid {p.paid_seconds:.0f}s; {p.outcome}"
            out.append(
                f'<line class="preempted" x1="{px:.1f}" y1="{y}" x2="{px:.1f}" y2="{y + ROW}" stroke="#d62728" stroke-width="3">'
                f"<title>{escape(tip)}</title></line>"
            )
    for vm in vms:
        y += ROW
        out += _vm_row(vm, y, x, end)
    out += _legend(run, height - 12)
    out.append("</svg>")
    return "\n".join(out)


def _axis(span: float, scale: float, height: int) -> list[str]:
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400) if span / s <= 10), 28800)
    out = []
    for i in range(0, int(span // step) + 1):
        px = LEFT + i * step * scale
        label = f"{i * step}s" if step < 60 else (f"{i * step // 60}m" if step < 3600 else f"{i * step // 3600}h")
        out.append(f'<line x1="{px:.1f}" y1="{TOP - 4}" x2="{px:.1f}" y2="{height - 44}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{px:.1f}" y="{height - 30}" text-anchor="middle" fill="#555">+{label}</text>')
    return out


def _legend(run: RunRecord, y: int) -> list[str]:
    """A key: the states the run went through, then the VM spans."""
    seen = list(dict.fromkeys(t.state for t in run.transitions))
    items = [(state, COLOURS.get(state, "#828282")) for state in seen] + [(f"vm {k}", c) for k, c in VM_COLOURS.items()]
    out, px = [], 8.0
    for label, colour in items:
        out.append(f'<rect x="{px:.1f}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{px + 14:.1f}" y="{y}" fill="#333">{escape(label)}</text>')
        px += 30 + 6.6 * len(label)
    return out


def _vm_row(vm: dict, y: int, x, end: datetime) -> list[str]:
    phases = {k: _t(v) for k, v in (vm.get("phases") or {}).items() if _t(v)}
    out = [f'<text x="8" y="{y + 17}">vm{escape(str(vm.get("worker")))}</text>']
    booted = phases.get("booted")
    ready = phases.get("agent_ready") or phases.get("first_task")
    first, last = phases.get("first_task"), phases.get("last_task")
    spans = []
    if booted:
        spans.append(("boot", booted, ready or end))
    if first:
        spans.append(("workload", first, last or end))
    idle_from = last or (ready if not first else None)
    if idle_from:
        spans.append(("idle", idle_from, end))
    for kind, a, b in spans:
        out.append(
            f'<rect class="vm-{kind}" x="{x(a):.1f}" y="{y + 8}" width="{max(x(b) - x(a), 2):.1f}" height="{ROW - 18}" '
            f'fill="{VM_COLOURS[kind]}"><title>vm{escape(str(vm.get("worker")))} {kind}</title></rect>'
        )
    ends = [-1e9, -1e9]  # the right end of the last label on each of the two label lines
    for name in PHASES:
        at = phases.get(name)
        if at:
            px = x(at)
            out.append(
                f'<line class="phase" x1="{px:.1f}" y1="{y + 4}" x2="{px:.1f}" y2="{y + ROW - 6}" stroke="#333">'
                f'<title>{escape(name)} at {escape(at.isoformat())}</title></line>'
            )
            label = PHASE_LABELS.get(name, name)
            line = next((i for i, end in enumerate(ends) if px + 2 > end + 4), None)
            if line is None:  # both lines taken here: the tick's title still names it
                continue
            ends[line] = px + 2 + text_width(label, 9)
            out.append(
                f'<text class="phase-label" x="{px + 2:.1f}" y="{y + (6 if line == 0 else ROW - 1)}" font-size="9" '
                f'fill="#333">{escape(label)}</text>'
            )
    return out
