"""The SLA report as a terminal table and as one self-contained HTML file with inline SVG charts.

The HTML has no script and no external resource: it opens offline. Every bar is an SVG `rect`
carrying `data-series`, `data-label` and `data-value` (the plotted number), with a `<title>`
tooltip, so the figures can be read back by a program as well as by eye.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape

from reports.printable import visible
from reports.sla import (
    AGE_BUCKETS,
    DIMENSION_TITLES,
    AckMetrics,
    Metrics,
    NextReply,
    Report,
    fmt_duration,
    fmt_percent,
)

HEADERS = (
    "tickets",
    "FR SLA",
    "res SLA",
    "escalated",
    "FCR",
    "TTFR med",
    "TTFR p90",
    "TTR med",
    "TTR p90",
)


def _cells(m: Metrics) -> list[str]:
    return [
        str(m.tickets),
        fmt_percent(m.fr_compliance),
        fmt_percent(m.res_compliance),
        fmt_percent(m.escalation_rate),
        fmt_percent(m.fcr_rate),
        fmt_duration(m.ttfr_median),
        fmt_duration(m.ttfr_p90),
        fmt_duration(m.ttr_median),
        fmt_duration(m.ttr_p90),
    ]


ACK_HEADERS = [
    "assigned",
    "acked",
    "timed out",
    "reassigned",
    "within",
    "TTA med",
    "TTA p90",
]


def _ack_cells(m: AckMetrics) -> list[str]:
    return [
        str(m.assignments),
        str(m.acknowledged),
        str(m.timed_out),
        str(m.reassignments),
        fmt_percent(m.within_share),
        fmt_duration(m.tta_median),
        fmt_duration(m.tta_p90),
    ]


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A plain-text table. `align` has one `l` or `r` per column; by default the first column
    is left-aligned and the others (numbers) right-aligned."""
    align = align or "l" + "r" * (len(headers) - 1)
    rows = [[visible(c) for c in r] for r in rows]  # ticket text: no terminal escapes
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        padded = [
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(cells, widths, align, strict=True)
        ]
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def _range(report: Report) -> str:
    def when(d: datetime | None, default: str) -> str:
        return d.isoformat(timespec="minutes") if d else default

    return (
        f"tickets opened {when(report.since, 'since the start')}"
        f" .. {when(report.until, 'now')}; backlog as of {when(report.as_of, '')}"
    )


def render_text(report: Report) -> str:
    out = [f"SLA report: {_range(report)}", ""]
    out.append(table(["", *HEADERS], [["all tickets", *_cells(report.overall)]]))
    for dim, groups in report.by.items():
        out += ["", f"by {DIMENSION_TITLES[dim]}"]
        out.append(table([DIMENSION_TITLES[dim], *HEADERS], [[g, *_cells(m)] for g, m in groups]))
    out += ["", "escalations by trigger"]
    out.append(
        table(
            ["trigger", "escalations"],
            [[t, str(n)] for t, n in report.escalations_by_trigger.items()],
        )
    )
    out += ["", f"backlog by tier and age ({report.backlog_total} open)"]
    buckets = [label for label, _ in AGE_BUCKETS]
    out.append(
        table(
            ["tier", *buckets, "total"],
            [
                [tier, *(str(counts[b]) for b in buckets), str(sum(counts.values()))]
                for tier, counts in report.backlog.items()
            ],
        )
    )
    for dim, acks in report.acks_by.items():
        if acks:
            out += ["", f"acknowledgement by {dim}"]
            out.append(table([dim, *ACK_HEADERS], [[g, *_ack_cells(a)] for g, a in acks]))
    out += _v2_sections(report)
    out += [
        "",
        "FR/res SLA: % met of tickets whose first response / resolution SLA is decided;"
        " escalated: % of tickets escalated at least once; FCR: % of done tickets never"
        " escalated; TTFR/TTR: time to first response / resolution (median, p90).",
    ]
    if any(report.acks_by.values()):
        out.append(
            "Acknowledgement: auto-assignments; TTA: time to acknowledge (median, p90);"
            " reassigned: assignments made after an ack timeout; within: % of acknowledged or"
            " timed-out assignments acknowledged within the team's ack_within."
        )
    return "\n".join(out) + "\n"


def _v2_sections(report: Report) -> list[str]:
    """By tag, next reply and rule firings: only when the cohort has any, so a report of
    tickets without them reads exactly as before."""
    out: list[str] = []
    if report.by_tag:
        out += ["", "by tag (a ticket counts once for each of its tags)"]
        out.append(table(["tag", *HEADERS], [[g, *_cells(m)] for g, m in report.by_tag]))
    for dim, groups in report.next_reply_by.items():
        out += ["", f"next reply by {DIMENSION_TITLES[dim]}"]
        out.append(
            table(
                [DIMENSION_TITLES[dim], *NEXT_REPLY_HEADERS],
                [[g, *_next_reply_cells(n)] for g, n in groups],
            )
        )
    if report.rules_fired:
        out += ["", "rule firings by rule"]
        out.append(table(["rule", "fired"], [[r, str(n)] for r, n in report.rules_fired.items()]))
    return out


NEXT_REPLY_HEADERS = ["met", "breached", "NR SLA"]


def _next_reply_cells(n: NextReply) -> list[str]:
    return [str(n.met), str(n.breached), fmt_percent(n.compliance)]


# --- HTML -----------------------------------------------------------------------------------------

COLORS = ("#3b6fb6", "#e08a2c", "#4a9a5b", "#b8483e", "#7a5aa6")
CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 980px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { padding: .2em .7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 0 0 1.5em; } figcaption { color: #555; font-size: .9em; }
.note { color: #555; font-size: .9em; }
"""


def _num(value: float) -> str:
    return f"{value:g}"


def bar_chart(
    chart_id: str,
    title: str,
    labels: list[str],
    series: list[tuple[str, list[float | None]]],
    *,
    unit: str = "",
    vmax: float | None = None,
) -> str:
    """Horizontal grouped bars: one group per label, one bar per series; None draws no bar."""
    bar_h, gap, label_w, plot_w = 14, 10, 150, 560
    group_h = bar_h * len(series) + gap
    legend_h = 22
    height = legend_h + group_h * max(len(labels), 1) + 10
    values = [v for _, vs in series for v in vs if v is not None]
    top = vmax if vmax is not None else max([*values, 0.0]) or 1.0
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart"'
        f' width="{label_w + plot_w + 80}" height="{height}" role="img"'
        f' aria-label="{escape(title)}">'
    ]
    for i, (name, _) in enumerate(series):
        x = label_w + i * 150
        parts.append(
            f'<rect x="{x}" y="4" width="12" height="12" fill="{COLORS[i % len(COLORS)]}"/>'
            f'<text x="{x + 16}" y="14" font-size="12">{escape(name)}</text>'
        )
    for g, label in enumerate(labels):
        y0 = legend_h + g * group_h
        parts.append(
            f'<text x="{label_w - 6}" y="{y0 + group_h / 2}" font-size="12"'
            f' text-anchor="end">{escape(label)}</text>'
        )
        for i, (name, vs) in enumerate(series):
            value = vs[g]
            y = y0 + i * bar_h
            if value is None:
                parts.append(
                    f'<text x="{label_w + 4}" y="{y + bar_h - 3}" font-size="11"'
                    ' fill="#888">n/a</text>'
                )
                continue
            w = max(plot_w * value / top, 0.5) if value else 0
            parts.append(
                f'<rect class="bar" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}"'
                f' fill="{COLORS[i % len(COLORS)]}" data-series="{escape(name)}"'
                f' data-label="{escape(label)}" data-value="{_num(value)}">'
                f"<title>{escape(label)} · {escape(name)}: {_num(value)}{unit}</title></rect>"
                f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 3}" font-size="11">'
                f"{_num(value)}{unit}</text>"
            )
    parts.append("</svg>")
    return f"<figure>{''.join(parts)}<figcaption>{escape(title)}</figcaption></figure>"


# (suffix, name, seconds): the largest value is drawn in the first unit it is under 100 of.
TIME_UNITS = (("s", "seconds", 1), ("min", "minutes", 60), ("h", "hours", 3600))
DAYS = ("d", "days", 86400)


def time_unit(values: list[timedelta | None]) -> tuple[str, str, int]:
    """The unit to draw durations in, from the data: demo tickets take seconds, real ones
    hours (in hours, 40 seconds drew as `0h`)."""
    top = max((v.total_seconds() for v in values if v is not None), default=0.0)
    return next((u for u in TIME_UNITS if top < 100 * u[2]), DAYS)


def _in(value: timedelta | None, seconds: int) -> float | None:
    return None if value is None else round(value.total_seconds() / seconds, 2)


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report, title: str = "SLA report") -> str:
    o = report.overall
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="note">{escape(_range(report))}</p>',
        _html_table(["", *HEADERS], [["all tickets", *_cells(o)]]),
    ]
    for dim, groups in report.by.items():
        name = DIMENSION_TITLES[dim]
        labels = [g for g, _ in groups]
        out.append(f"<h2>By {escape(name)}</h2>")
        out.append(
            bar_chart(
                f"sla-by-{name}",
                f"SLA compliance by {name} (% met)",
                labels,
                [
                    ("first response", [m.fr_compliance for _, m in groups]),
                    ("resolution", [m.res_compliance for _, m in groups]),
                ],
                unit="%",
                vmax=100,
            )
        )
        out.append(_html_table([name, *HEADERS], [[g, *_cells(m)] for g, m in groups]))
    prio = report.by["priority"]
    times = [
        ("first response median", [m.ttfr_median for _, m in prio]),
        ("first response p90", [m.ttfr_p90 for _, m in prio]),
        ("resolution median", [m.ttr_median for _, m in prio]),
        ("resolution p90", [m.ttr_p90 for _, m in prio]),
    ]
    suffix, unit_name, seconds = time_unit([v for _, vs in times for v in vs])
    out.append("<h2>Time to first response and resolution</h2>")
    out.append(
        bar_chart(
            "time-by-priority",
            f"Median and p90 {unit_name} to first response and to resolution, by priority",
            [g for g, _ in prio],
            [(name, [_in(v, seconds) for v in vs]) for name, vs in times],
            unit=suffix,
        )
    )
    triggers = report.escalations_by_trigger
    out.append("<h2>Escalations</h2>")
    out.append(
        f'<p class="note">{o.escalated} of {o.tickets} tickets escalated'
        f" ({escape(fmt_percent(o.escalation_rate))}), {o.escalations} escalations in all;"
        f" first-contact resolution {escape(fmt_percent(o.fcr_rate))}.</p>"
    )
    out.append(
        bar_chart(
            "escalations-by-trigger",
            "Escalations by trigger",
            list(triggers),
            [("escalations", [float(n) for n in triggers.values()])],
        )
    )
    buckets = [label for label, _ in AGE_BUCKETS]
    out.append(f"<h2>Backlog by tier and age ({report.backlog_total} open)</h2>")
    out.append(
        bar_chart(
            "backlog-by-tier",
            "Open tickets by tier and age",
            list(report.backlog),
            [(b, [float(c[b]) for c in report.backlog.values()]) for b in buckets],
        )
    )
    out.append(
        _html_table(
            ["tier", *buckets, "total"],
            [
                [tier, *(str(c[b]) for b in buckets), str(sum(c.values()))]
                for tier, c in report.backlog.items()
            ],
        )
    )
    for dim, acks in report.acks_by.items():
        if acks:
            out.append(f"<h2>Acknowledgement by {escape(dim)}</h2>")
            out.append(_html_table([dim, *ACK_HEADERS], [[g, *_ack_cells(a)] for g, a in acks]))
    if report.by_tag:
        out.append("<h2>By tag</h2>")
        out.append(_html_table(["tag", *HEADERS], [[g, *_cells(m)] for g, m in report.by_tag]))
    for dim, replies in report.next_reply_by.items():
        name = DIMENSION_TITLES[dim]
        out.append(f"<h2>Next reply by {escape(name)}</h2>")
        out.append(
            _html_table(
                [name, *NEXT_REPLY_HEADERS], [[g, *_next_reply_cells(n)] for g, n in replies]
            )
        )
    if report.rules_fired:
        out.append("<h2>Rule firings</h2>")
        out.append(
            _html_table(["rule", "fired"], [[r, str(n)] for r, n in report.rules_fired.items()])
        )
    out.append(
        '<p class="note">FR/res SLA: % met of tickets whose first response / resolution SLA is'
        " decided; escalated: % of tickets escalated at least once; FCR (first-contact"
        " resolution): % of done tickets never escalated; TTFR/TTR: time to first response /"
        " resolution, median and p90 (nearest rank).</p>"
    )
    out.append("</body></html>")
    return "\n".join(out) + "\n"
