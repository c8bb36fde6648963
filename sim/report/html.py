"""A self-contained HTML report: inline CSS and a hand-drawn SVG timeline, nothing fetched.

Made to be projected in a training room (large type, strong colours, one page) and to open from
a USB stick with no network: no scripts, no fonts, no CDN.
"""

from __future__ import annotations

from html import escape
from itertools import groupby

from cnilab.sim.report.model import Report, Transition

GOOD, BAD, WAIT, NEUTRAL = "#2e7d32", "#c62828", "#f9a825", "#9e9e9e"
PATH_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#ad1457", "#283593")
STATE_COLOURS = {
    "Established": GOOD, "Up": GOOD, "ok": GOOD, "flap up": GOOD,
    "Idle": BAD, "Down": BAD, "AdminDown": BAD, "none": BAD,
    "Connect": WAIT, "Active": WAIT, "OpenSent": WAIT, "OpenConfirm": WAIT, "Init": WAIT,
}
KIND_ORDER = {"link": 0, "bfd": 1, "session": 2, "route": 3, "traffic": 4}
LANE_H, LABEL_W, PLOT_W, PAD = 34, 330, 1100, 12


def _path_colours(report: Report) -> dict[str, str]:
    paths: list[str] = []
    for tr in report.series.transitions:
        if tr.kind in ("route", "traffic") and tr.state not in paths and tr.state != "none":
            paths.append(tr.state)
    for b in report.series.bins:
        paths += [p for p in b.by_path if p not in paths]
    return {p: PATH_COLOURS[i % len(PATH_COLOURS)] for i, p in enumerate(sorted(paths))}


def _colour(tr: Transition, paths: dict[str, str]) -> str:
    if tr.kind in ("route", "traffic"):
        return paths.get(tr.state, BAD)
    if tr.kind == "link":
        return STATE_COLOURS.get(tr.state, BAD)
    return STATE_COLOURS.get(tr.state, NEUTRAL)


def _svg(report: Report) -> str:
    dur = max(report.series.duration, 1e-6)
    paths = _path_colours(report)

    def x(t: float) -> float:
        return LABEL_W + PLOT_W * min(max(t, 0.0), dur) / dur

    trans = sorted(report.series.transitions, key=lambda t: (KIND_ORDER.get(t.kind, 9), t.subject, t.t))
    lanes = [(key, list(grp)) for key, grp in groupby(trans, key=lambda t: (t.kind, t.subject))]
    loss_h = 120 if report.series.bins else 0
    height = PAD * 2 + 40 + LANE_H * len(lanes) + (loss_h + 40 if loss_h else 0) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {LABEL_W + PLOT_W + 40} {height}" width="100%" '
           f'font-family="sans-serif" font-size="18" role="img" aria-label="timeline">']
    y = PAD + 30
    # time axis
    step = next(s for s in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if dur / s <= 12)
    t = 0.0
    while t <= dur + 1e-9:
        out.append(f'<line x1="{x(t):.1f}" y1="{y - 6}" x2="{x(t):.1f}" y2="{height - 30}" stroke="#e0e0e0"/>')
        out.append(f'<text x="{x(t):.1f}" y="{y - 10}" text-anchor="middle" fill="#555">{t:g}s</text>')
        t += step
    for (kind, subject), items in lanes:
        out.append(f'<text x="{LABEL_W - 10}" y="{y + LANE_H * 0.65:.1f}" text-anchor="end">'
                   f'{escape(kind)}: {escape(subject)}</text>')
        for i, tr in enumerate(items):
            end = items[i + 1].t if i + 1 < len(items) else dur
            w = max(x(end) - x(tr.t), 1.0)
            title = f"{tr.t:.3f}s {subject}: {tr.state}" + (f" ({tr.reason})" if tr.reason else "")
            out.append(f'<rect x="{x(tr.t):.2f}" y="{y + 4}" width="{w:.2f}" height="{LANE_H - 8}" '
                       f'fill="{_colour(tr, paths)}"><title>{escape(title)}</title></rect>')
            if w > 90:
                out.append(f'<text x="{x(tr.t) + 5:.1f}" y="{y + LANE_H * 0.65:.1f}" fill="#fff" '
                           f'font-size="15">{escape(tr.state)}</text>')
        y += LANE_H
    if loss_h:
        y += 30
        out.append(f'<text x="{LABEL_W - 10}" y="{y + loss_h / 2:.1f}" text-anchor="end">'
                   f'packets per {report.series.bin_s:g}s</text>')
        bw = PLOT_W * report.series.bin_s / dur
        for b in report.series.bins:
            if not b.sent:
                continue
            top = y
            for path, n in sorted(b.by_path.items()):
                h = loss_h * n / b.sent
                out.append(f'<rect x="{x(b.t):.2f}" y="{top:.2f}" width="{max(bw, 1):.2f}" height="{h:.2f}" '
                           f'fill="{paths.get(path, NEUTRAL)}"><title>{b.t:g}s {escape(path)}: {n}</title></rect>')
                top += h
            if b.lost:
                out.append(f'<rect x="{x(b.t):.2f}" y="{top:.2f}" width="{max(bw, 1):.2f}" '
                           f'height="{loss_h * b.lost / b.sent:.2f}" fill="{BAD}">'
                           f'<title>{b.t:g}s lost {b.lost} of {b.sent}</title></rect>')
        y += loss_h
    # step markers for actions (expectations are listed in the table)
    for s in report.steps:
        if s.do in ("expect", "wait", "wait_established"):
            continue
        out.append(f'<line x1="{x(s.start):.1f}" y1="{PAD + 24}" x2="{x(s.start):.1f}" y2="{y}" '
                   f'stroke="#000" stroke-width="2" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{x(s.start) + 4:.1f}" y="{y + 22}" font-weight="bold">#{s.index}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _legend(report: Report) -> str:
    items = [(c, p) for p, c in _path_colours(report).items()]
    items += [(GOOD, "Established / Up / ok"), (WAIT, "connecting"), (BAD, "Idle / Down / lost / fault")]
    return " ".join(f'<span class="key"><span class="sw" style="background:{c}"></span>{escape(t)}</span>'
                    for c, t in items)


def render_html(report: Report) -> str:
    """The whole page as one string (write it anywhere; it references nothing outside itself)."""
    verdict = "PASS" if report.passed else "FAIL"
    rows = []
    for s in report.steps:
        measured = "" if s.measured is None else f"{s.measured:.3f}s"
        limit = "" if s.limit is None else f"{s.limit:g}s"
        rows.append(f'<tr class="{s.status}"><td>#{s.index}</td><td>{s.start:.3f}s</td>'
                    f'<td>{escape(s.description)}</td><td class="st">{s.status.upper()}</td>'
                    f'<td>{measured}</td><td>{limit}</td><td>{escape(s.reason)}</td></tr>')
    params = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in report.parameters.items())
    notes = "".join(f"<li>{escape(n)}</li>" for n in report.notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{escape(report.scenario)}: {verdict}</title>
<style>
body {{ font-family: sans-serif; font-size: 20px; margin: 24px; color: #111; background: #fff; }}
h1 {{ font-size: 34px; margin: 0 0 6px; }}
.verdict {{ display: inline-block; padding: 4px 18px; color: #fff; border-radius: 6px;
  background: {GOOD if report.passed else BAD}; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 6px 12px; text-align: left; vertical-align: top; }}
tr.fail td.st {{ color: {BAD}; font-weight: bold; }} tr.pass td.st {{ color: {GOOD}; font-weight: bold; }}
tr.fail {{ background: #ffebee; }}
.key {{ margin-right: 18px; white-space: nowrap; }}
.sw {{ display: inline-block; width: 22px; height: 16px; margin-right: 6px; vertical-align: middle; }}
.meta {{ color: #444; }}
</style></head><body>
<h1>{escape(report.scenario)} <span class="verdict">{verdict}</span></h1>
<p class="meta">{escape(report.description)}<br>topology <b>{escape(report.topology)}</b> ·
executor <b>{escape(report.executor)}</b> · seed <b>{report.seed}</b> · {report.duration:.1f}s</p>
<p>{_legend(report)}</p>
{_svg(report)}
<h2>Steps</h2>
<table><tr><th></th><th>at</th><th>step</th><th>result</th><th>measured</th><th>limit</th><th>detail</th></tr>
{"".join(rows)}</table>
<h2>Parameters</h2><table>{params}</table>
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
</body></html>
"""
