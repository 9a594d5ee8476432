"""Small accessible charts as inline SVG, drawn on the server: the dashboard's pages have no script.

A chart is a figure with a heading, an ``<svg role="img">`` (its ``<title>`` and ``<desc>`` name it
for screen readers, and every data point has a ``<title>`` tooltip), a legend and a data table in
a ``<details>`` element as the text fallback. Colours are SVG presentation attributes (``fill``,
``stroke``), not ``style`` attributes, so the page's Content-Security-Policy (no inline style but
the hashed stylesheet) holds. Every text taken from data is escaped.

Two kinds: :class:`LineChart` (series over time, one point per run) and :class:`BarChart` (one
value per category). Values are scaled into the plot area :data:`PLOT` of a fixed ``viewBox``; the
y axis starts at zero and ends at a round number (:func:`nice_ceiling`), or at ``y_max`` (1 for
ratios).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from markupsafe import Markup, escape

__all__ = [
    "HEIGHT",
    "PALETTE",
    "PLOT",
    "WIDTH",
    "Bar",
    "BarChart",
    "Box",
    "LineChart",
    "Point",
    "Series",
    "Unit",
    "axis_top",
    "format_value",
    "nice_ceiling",
    "render_chart",
    "scale",
]

#: The SVG's ``viewBox`` is ``0 0 WIDTH HEIGHT``; the stylesheet scales it to the figure's width.
WIDTH = 640
HEIGHT = 240
#: Okabe-Ito colours, told apart with the common colour-vision deficiencies (yellow left out).
PALETTE = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#7f3c8d", "#3b3b3b")
_AXIS = "#66717e"
_GRID = "#dde2e8"
_TEXT = "#1d2733"


@dataclass(frozen=True)
class Box:
    """The plot area inside the ``viewBox``: x grows to the right, y downwards (SVG coordinates)."""

    left: float
    top: float
    right: float
    bottom: float


#: Where data is drawn: room on the left for the y labels and below for the x labels.
PLOT = Box(left=64.0, top=14.0, right=WIDTH - 14.0, bottom=HEIGHT - 42.0)


class Unit(StrEnum):
    """What a chart's values measure (the units of ``sync.run_metrics``)."""

    RECORDS = "records"
    CALLS = "calls"
    COUNT = "count"
    RATIO = "ratio"
    SECONDS = "seconds"


@dataclass(frozen=True)
class Point:
    """One value at one time (a run's start), with what its tooltip adds (a DAG id, a status)."""

    x: datetime
    y: float
    note: str = ""


@dataclass(frozen=True)
class Series:
    """A named line of points (drawn in time order)."""

    name: str
    points: tuple[Point, ...] = ()


@dataclass(frozen=True)
class Bar:
    """One category's value, with what its tooltip adds."""

    label: str
    value: float
    note: str = ""


@dataclass(frozen=True)
class LineChart:
    """Series over time.

    :param chart_id: the figure's id (``chart-<id>``), lower case, digits and dashes.
    :param y_label: what the y axis measures; the unit shown is added in brackets.
    :param y_max: a fixed top of the y axis (1 for ratios); None: a round number above the data.
    :param empty_note: what the "no data yet" note adds (where the figures come from).
    """

    chart_id: str
    title: str
    description: str
    y_label: str
    unit: Unit
    series: tuple[Series, ...] = ()
    y_max: float | None = None
    empty_note: str = ""

    @property
    def has_data(self) -> bool:
        """Whether any series has a point."""
        return any(s.points for s in self.series)


@dataclass(frozen=True)
class BarChart:
    """One value per category (drawn in the order given)."""

    chart_id: str
    title: str
    description: str
    y_label: str
    unit: Unit
    bars: tuple[Bar, ...] = ()
    y_max: float | None = None
    empty_note: str = ""

    @property
    def has_data(self) -> bool:
        """Whether there is a bar."""
        return bool(self.bars)


Chart = LineChart | BarChart


def scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    """Map ``value`` from ``[lo, hi]`` to ``[out_lo, out_hi]`` (the middle when the domain is a point)."""
    if hi == lo:
        return (out_lo + out_hi) / 2
    return out_lo + (value - lo) * (out_hi - out_lo) / (hi - lo)


def nice_ceiling(value: float) -> float:
    """Return the smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (1 for <= 0)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * magnitude * (1 + 1e-9):
            return step * magnitude
    return 10.0 * magnitude  # pragma: no cover - the loop always returns


@dataclass(frozen=True)
class _Scale:
    """How a unit's values read on an axis: seconds become minutes, hours or days."""

    label: str
    divisor: float


def _seconds_scale(top: float) -> _Scale:
    if top >= 2 * 86400:
        return _Scale("days", 86400.0)
    if top >= 2 * 3600:
        return _Scale("hours", 3600.0)
    if top >= 120:
        return _Scale("minutes", 60.0)
    return _Scale("seconds", 1.0)


def _axis_scale(unit: Unit, top: float) -> _Scale:
    if unit is Unit.SECONDS:
        return _seconds_scale(top)
    if unit is Unit.RATIO:
        return _Scale("%", 0.01)
    return _Scale(unit.value, 1.0)


def _number(value: float) -> str:
    if abs(value) >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}".rstrip("0").rstrip(".")


def format_value(value: float, unit: Unit) -> str:
    """Return a value as a person reads it: ``97.5%``, ``1,204 records``, ``12.5 minutes``."""
    if unit is Unit.RATIO:
        return f"{value * 100:.1f}%"
    if unit is Unit.SECONDS:
        chosen = _seconds_scale(abs(value))
        return f"{_number(value / chosen.divisor)} {chosen.label}"
    return f"{_number(value)} {unit.value}"


def _when(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _time_ticks(lo: datetime, hi: datetime, count: int = 5) -> list[tuple[datetime, str]]:
    """Return up to ``count`` evenly spaced times between ``lo`` and ``hi`` with short labels."""
    span = hi - lo
    fmt = "%m-%d %H:%M" if span <= timedelta(days=3) else "%b %d"
    if span <= timedelta(0):
        return [(lo, lo.astimezone(UTC).strftime(fmt))]
    step = span / (count - 1)
    return [(lo + step * i, (lo + step * i).astimezone(UTC).strftime(fmt)) for i in range(count)]


def _f(value: float) -> str:
    """Format a coordinate (two decimals, no trailing zeros)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def axis_top(largest: float, unit: Unit, y_max: float | None = None) -> float:
    """Return the top of the y axis: ``y_max`` (never below the data), else a round number in the
    unit the axis shows (25 minutes rather than 1,500 seconds)."""
    if y_max is not None:
        return max(y_max, largest)
    divisor = _axis_scale(unit, largest).divisor
    return nice_ceiling(largest / divisor) * divisor


def _divisions(top: float, divisor: float) -> int:
    """Return how many steps the y axis has: 5 for a top of 2.5 or 5 times a power of ten, else 4."""
    shown = top / divisor
    mantissa = shown / 10.0 ** math.floor(math.log10(shown)) if shown > 0 else 1.0
    return 5 if round(mantissa, 6) in (2.5, 5.0) else 4


def _y_axis(parts: list[str], largest: float, top: float, unit: Unit, y_label: str) -> None:
    shown = _axis_scale(unit, largest)  # the unit the data reads in (the top may round past it)
    steps = _divisions(top, shown.divisor)
    for i in range(steps + 1):
        value = top * i / steps
        y = scale(value, 0.0, top, PLOT.bottom, PLOT.top)
        parts.append(
            f'<line x1="{_f(PLOT.left)}" y1="{_f(y)}" x2="{_f(PLOT.right)}" y2="{_f(y)}"'
            f' stroke="{_GRID}" stroke-width="1"/>'
        )
        label = _number(value / shown.divisor)
        parts.append(
            f'<text x="{_f(PLOT.left - 6)}" y="{_f(y + 4)}" text-anchor="end" font-size="11"'
            f' fill="{_AXIS}">{escape(label)}</text>'
        )
    middle = (PLOT.top + PLOT.bottom) / 2
    parts.append(
        f'<text class="y-label" x="14" y="{_f(middle)}" transform="rotate(-90 14 {_f(middle)})"'
        f' text-anchor="middle" font-size="11" fill="{_TEXT}">'
        f"{escape(y_label)} ({escape(shown.label)})</text>"
    )
    parts.append(
        f'<line x1="{_f(PLOT.left)}" y1="{_f(PLOT.bottom)}" x2="{_f(PLOT.right)}" y2="{_f(PLOT.bottom)}"'
        f' stroke="{_AXIS}" stroke-width="1"/>'
    )


def _open_svg(chart: Chart) -> list[str]:
    title_id = f"chart-{chart.chart_id}-title"
    desc_id = f"chart-{chart.chart_id}-desc"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-labelledby="{title_id} {desc_id}" aria-label="{escape(chart.title)}" class="chart-svg">',
        f'<title id="{title_id}">{escape(chart.title)}</title>',
        f'<desc id="{desc_id}">{escape(chart.description)}</desc>',
    ]


def _empty(chart: Chart) -> str:
    parts = _open_svg(chart)
    parts.append(
        f'<rect x="{_f(PLOT.left)}" y="{_f(PLOT.top)}" width="{_f(PLOT.right - PLOT.left)}"'
        f' height="{_f(PLOT.bottom - PLOT.top)}" fill="none" stroke="{_GRID}" stroke-width="1"/>'
    )
    parts.append(
        f'<text class="no-data" x="{_f((PLOT.left + PLOT.right) / 2)}" y="{_f((PLOT.top + PLOT.bottom) / 2)}"'
        f' text-anchor="middle" font-size="14" fill="{_AXIS}">No data yet</text>'
    )
    parts.append("</svg>")
    note = f"No data yet. {chart.empty_note}".strip()
    return "".join(parts) + f'<p class="no-data muted">{escape(note)}</p>'


def _line_svg(chart: LineChart) -> str:
    points = [p for s in chart.series for p in s.points]
    lo = min(p.x for p in points)
    hi = max(p.x for p in points)
    t_lo, t_hi = lo.timestamp(), hi.timestamp()
    largest = max(p.y for p in points)
    top = axis_top(largest, chart.unit, chart.y_max)
    parts = _open_svg(chart)
    _y_axis(parts, largest, top, chart.unit, chart.y_label)
    ticks = _time_ticks(lo, hi)
    for index, (when, label) in enumerate(ticks):
        x = scale(when.timestamp(), t_lo, t_hi, PLOT.left, PLOT.right)
        anchor = "end" if index == len(ticks) - 1 and len(ticks) > 1 else "middle"  # stays inside
        parts.append(
            f'<line x1="{_f(x)}" y1="{_f(PLOT.bottom)}" x2="{_f(x)}" y2="{_f(PLOT.bottom + 4)}"'
            f' stroke="{_AXIS}" stroke-width="1"/>'
            f'<text x="{_f(x)}" y="{_f(PLOT.bottom + 16)}" text-anchor="{anchor}" font-size="11"'
            f' fill="{_AXIS}">{escape(label)}</text>'
        )
    parts.append(
        f'<text class="x-label" x="{_f((PLOT.left + PLOT.right) / 2)}" y="{HEIGHT - 6}" text-anchor="middle"'
        f' font-size="11" fill="{_TEXT}">run started (UTC)</text>'
    )
    for index, series in enumerate(chart.series):
        if not series.points:
            continue
        colour = PALETTE[index % len(PALETTE)]
        ordered = sorted(series.points, key=lambda p: p.x)
        xy = [
            (
                scale(p.x.timestamp(), t_lo, t_hi, PLOT.left, PLOT.right),
                scale(p.y, 0.0, top, PLOT.bottom, PLOT.top),
            )
            for p in ordered
        ]
        parts.append(f'<g class="series" data-series="{escape(series.name)}">')
        if len(xy) > 1:
            path = " ".join(f"{_f(x)},{_f(y)}" for x, y in xy)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), p in zip(xy, ordered, strict=True):
            tip = f"{series.name}: {format_value(p.y, chart.unit)} at {_when(p.x)}"
            tip += f" ({p.note})" if p.note else ""
            parts.append(
                f'<circle class="point" cx="{_f(x)}" cy="{_f(y)}" r="3.5" fill="{colour}">'
                f"<title>{escape(tip)}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _bar_svg(chart: BarChart) -> str:
    largest = max(b.value for b in chart.bars)
    top = axis_top(largest, chart.unit, chart.y_max)
    parts = _open_svg(chart)
    _y_axis(parts, largest, top, chart.unit, chart.y_label)
    slot = (PLOT.right - PLOT.left) / len(chart.bars)
    width = min(slot * 0.6, 80.0)
    for index, bar in enumerate(chart.bars):
        colour = PALETTE[index % len(PALETTE)]
        centre = PLOT.left + slot * (index + 0.5)
        y = scale(max(bar.value, 0.0), 0.0, top, PLOT.bottom, PLOT.top)
        tip = f"{bar.label}: {format_value(bar.value, chart.unit)}" + (f" ({bar.note})" if bar.note else "")
        parts.append(
            f'<rect class="bar" x="{_f(centre - width / 2)}" y="{_f(y)}" width="{_f(width)}"'
            f' height="{_f(PLOT.bottom - y)}" fill="{colour}" data-label="{escape(bar.label)}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text x="{_f(centre)}" y="{_f(y - 4)}" text-anchor="middle" font-size="11"'
            f' fill="{_TEXT}">{escape(format_value(bar.value, chart.unit))}</text>'
            f'<text x="{_f(centre)}" y="{_f(PLOT.bottom + 16)}" text-anchor="middle" font-size="11"'
            f' fill="{_AXIS}">{escape(bar.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[Series]) -> str:
    """Return the legend of the series that have points, in the colours their lines are drawn in."""
    items = []
    for index, one in enumerate(series):
        if not one.points:
            continue
        colour = PALETTE[index % len(PALETTE)]
        items.append(
            f'<li><svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true">'
            f'<rect width="12" height="12" fill="{colour}"/></svg> {escape(one.name)}</li>'
        )
    return f'<ul class="legend">{"".join(items)}</ul>'


def _table(chart: Chart) -> str:
    if isinstance(chart, LineChart):
        head = "<tr><th>Series</th><th>Run started</th><th>Value</th><th>Run</th></tr>"
        rows = [
            f"<tr><td>{escape(s.name)}</td><td>{escape(_when(p.x))}</td>"
            f'<td class="num">{escape(format_value(p.y, chart.unit))}</td><td>{escape(p.note)}</td></tr>'
            for s in chart.series
            for p in sorted(s.points, key=lambda p: p.x)
        ]
    else:
        head = "<tr><th>Category</th><th>Value</th><th>Detail</th></tr>"
        rows = [
            f'<tr><td>{escape(b.label)}</td><td class="num">{escape(format_value(b.value, chart.unit))}</td>'
            f"<td>{escape(b.note)}</td></tr>"
            for b in chart.bars
        ]
    return (
        f'<details><summary>Data ({len(rows)} values)</summary><table class="chart-data">'
        f"<thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></details>"
    )


def render_chart(chart: Chart) -> Markup:
    """Return the chart as a ``<figure id="chart-<id>">``: heading, SVG, legend and data table.

    A chart without data shows its frame, "No data yet" and ``empty_note`` instead.
    """
    parts = [
        f'<figure class="chart" id="chart-{escape(chart.chart_id)}" data-kind='
        f'"{"line" if isinstance(chart, LineChart) else "bar"}">',
        f"<figcaption><h3>{escape(chart.title)}</h3></figcaption>",
    ]
    if not chart.has_data:
        parts.append(_empty(chart))
    elif isinstance(chart, LineChart):
        parts.append(_line_svg(chart))
        parts.append(_legend(chart.series))
        parts.append(_table(chart))
    else:
        parts.append(_bar_svg(chart))
        parts.append(_table(chart))
    parts.append("</figure>")
    return Markup("".join(parts))  # noqa: S704 - every data text above went through escape()
