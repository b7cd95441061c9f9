"""A target's last hour as an inline SVG bar chart: events in and operations pushed, side by side per minute."""

from __future__ import annotations

from html import escape

from worker.store.minutes import MINUTES_KEPT, Minute

WIDTH, HEIGHT = 480, 96
"""Size of the plot in pixels, axes' labels aside."""
LABEL_WIDTH, LABEL_HEIGHT = 40, 16
SERIES = (("received", "in", "#1f6feb"), ("pushed", "pushed", "#2da44e"))
"""Each bar of a minute: the `Minute` field, its name in the legend, its colour."""
BARS_SHARE = 0.8
"""Part of a minute's width its bars take; the rest keeps minutes apart."""


def svg(minutes: list[Minute]) -> str:
    """`minutes` (oldest first, one a minute) as an SVG element; the total of each series in its title."""
    top = max((getattr(minute, field) for minute in minutes for field, _, _ in SERIES), default=0) or 1
    slot = WIDTH / max(len(minutes), 1)
    bar = slot * BARS_SHARE / len(SERIES)
    totals = ", ".join(f"{sum(getattr(m, field) for m in minutes)} {name}" for field, name, _ in SERIES)
    parts = [(f'<svg class="chart" role="img" width="{WIDTH + LABEL_WIDTH}" height="{HEIGHT + LABEL_HEIGHT}" '
             f'viewBox="0 0 {WIDTH + LABEL_WIDTH} {HEIGHT + LABEL_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'),
             f"<title>last {MINUTES_KEPT} minutes: {escape(totals)}</title>",
             f'<line x1="{LABEL_WIDTH}" y1="{HEIGHT}" x2="{LABEL_WIDTH + WIDTH}" y2="{HEIGHT}" stroke="#999"/>',
             f'<text x="{LABEL_WIDTH - 4}" y="10" text-anchor="end">{top}</text>',
             f'<text x="{LABEL_WIDTH - 4}" y="{HEIGHT}" text-anchor="end">0</text>',
             f'<text x="{LABEL_WIDTH}" y="{HEIGHT + LABEL_HEIGHT - 2}">-{MINUTES_KEPT}m</text>',
             f'<text x="{LABEL_WIDTH + WIDTH}" y="{HEIGHT + LABEL_HEIGHT - 2}" text-anchor="end">now</text>']
    for n, minute in enumerate(minutes):
        for k, (field, name, colour) in enumerate(SERIES):
            if value := getattr(minute, field):
                height = value / top * (HEIGHT - 4)
                parts.append(f'<rect class="{name}" x="{LABEL_WIDTH + n * slot + k * bar:.1f}" '
                             f'y="{HEIGHT - height:.1f}" width="{bar:.1f}" height="{height:.1f}" fill="{colour}">'
                             f"<title>{value} {name}</title></rect>")
    parts.append("</svg>")
    return "".join(parts)


def legend() -> str:
    """The names and colours of the series, once for all the charts of a page."""
    return " ".join(f'<span class="key" style="color:{colour}">&#9632; {name}</span>' for _, name, colour in SERIES)
