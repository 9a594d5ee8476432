"""The SVG charts, pure: points scale into the plot area of the viewBox, the y axis ends at a round
number in the unit it shows, an empty chart says "No data yet", every data text is escaped, and
the markup is accessible (title, desc, aria, tooltips, legend, data table) and well-formed."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from donor_sync.web.dashboard.charts import (
    HEIGHT,
    PALETTE,
    PLOT,
    WIDTH,
    Bar,
    BarChart,
    LineChart,
    Point,
    Series,
    Unit,
    axis_top,
    format_value,
    nice_ceiling,
    render_chart,
    scale,
)

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _svg(html: str) -> ET.Element:
    """Return the chart's <svg> element, parsed as XML (so it must be well-formed)."""
    found = re.search(r"<svg xmlns=.*?</svg>", html, re.S)
    assert found, html[:300]
    return ET.fromstring(found.group(0))


def _circles(svg: ET.Element) -> list[tuple[float, float, str]]:
    return [
        (float(c.get("cx", "nan")), float(c.get("cy", "nan")), c.get("fill", ""))
        for c in svg.iter(f"{SVG}circle")
    ]


def _line(*series: Series, unit: Unit = Unit.RECORDS, y_max: float | None = None) -> LineChart:
    return LineChart("test", "Test chart", "What it shows.", "per run", unit, tuple(series), y_max=y_max)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, 1.0, id="zero"),
        pytest.param(-5, 1.0, id="negative"),
        pytest.param(1, 1.0, id="one"),
        pytest.param(1.2, 2.0, id="just-above-one"),
        pytest.param(2.2, 2.5, id="two-and-a-half"),
        pytest.param(3, 5.0, id="five"),
        pytest.param(7, 10.0, id="ten"),
        pytest.param(100, 100.0, id="exact-power"),
        pytest.param(1201, 2000.0, id="thousands"),
        pytest.param(0.042, 0.05, id="small"),
    ],
)
def test_nice_ceiling_is_the_next_round_number(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        pytest.param(0.975, Unit.RATIO, "97.5%", id="ratio"),
        pytest.param(1204, Unit.RECORDS, "1,204 records", id="records"),
        pytest.param(25_000, Unit.CALLS, "25k calls", id="thousands"),
        pytest.param(45, Unit.SECONDS, "45 seconds", id="seconds"),
        pytest.param(750, Unit.SECONDS, "12.5 minutes", id="minutes"),
        pytest.param(3 * 3600, Unit.SECONDS, "3 hours", id="hours"),
        pytest.param(3 * 86400, Unit.SECONDS, "3 days", id="days"),
        pytest.param(2.5, Unit.COUNT, "2.5 count", id="fraction"),
    ],
)
def test_values_read_in_the_unit_a_person_expects(value: float, unit: Unit, expected: str) -> None:
    assert format_value(value, unit) == expected


def test_the_axis_top_is_round_in_the_unit_shown_and_never_below_the_data() -> None:
    assert axis_top(1300, Unit.SECONDS) == 25 * 60  # 21.7 minutes: the axis ends at 25 minutes
    assert axis_top(7300, Unit.SECONDS) == 2.5 * 3600  # 2.03 hours: at 2.5 hours
    assert axis_top(0.42, Unit.RATIO, 1.0) == 1.0
    assert axis_top(1.3, Unit.RATIO, 1.0) == 1.3  # a fixed top never hides a larger value
    assert axis_top(87, Unit.RECORDS) == 100


def test_points_scale_to_the_plot_area_of_the_viewbox() -> None:
    series = Series(
        "pushed",
        (Point(T0, 0.0), Point(T0 + timedelta(hours=1), 50.0), Point(T0 + timedelta(hours=4), 100.0)),
    )
    svg = _svg(render_chart(_line(series)))
    assert svg.get("viewBox") == f"0 0 {WIDTH} {HEIGHT}"
    (first, middle, last) = _circles(svg)
    # time runs left to right over the plot; values bottom (0) to top (100, a round number)
    assert first[:2] == pytest.approx((PLOT.left, PLOT.bottom))
    assert last[:2] == pytest.approx((PLOT.right, PLOT.top))
    assert middle[0] == pytest.approx(PLOT.left + (PLOT.right - PLOT.left) / 4, abs=0.01)
    assert middle[1] == pytest.approx((PLOT.top + PLOT.bottom) / 2, abs=0.01)
    for x, y, _ in _circles(svg):
        assert 0 <= x <= WIDTH
        assert 0 <= y <= HEIGHT
    polyline = next(svg.iter(f"{SVG}polyline"))
    assert len(polyline.get("points", "").split()) == 3


def test_points_are_drawn_in_time_order_and_ratios_span_zero_to_one() -> None:
    late, early = Point(T0 + timedelta(hours=2), 0.25), Point(T0, 0.75)
    svg = _svg(render_chart(_line(Series("rate", (late, early)), unit=Unit.RATIO, y_max=1.0)))
    (a, b) = _circles(svg)
    assert a[0] < b[0]
    span = PLOT.bottom - PLOT.top
    assert a[1] == pytest.approx(PLOT.bottom - 0.75 * span, abs=0.01)
    assert b[1] == pytest.approx(PLOT.bottom - 0.25 * span, abs=0.01)
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "100" in texts  # the axis reads in percent
    assert "rate (%)" not in texts
    assert "per run (%)" in texts


def test_a_single_point_sits_in_the_middle_and_each_series_has_its_colour() -> None:
    one = Series("a", (Point(T0, 4.0),))
    two = Series("b", (Point(T0, 2.0),))
    html = render_chart(_line(Series("empty"), one, two))
    svg = _svg(html)
    circles = _circles(svg)
    assert [round(x, 2) for x, _, _ in circles] == [round((PLOT.left + PLOT.right) / 2, 2)] * 2
    # colours follow the series' places, the empty one included, and the legend uses the same
    assert [fill for _, _, fill in circles] == [PALETTE[1], PALETTE[2]]
    legend = re.findall(r'<li><svg[^>]*><rect[^>]*fill="(#[0-9a-f]{6})"/></svg> (\w+)</li>', html)
    assert legend == [(PALETTE[1], "a"), (PALETTE[2], "b")]


def test_an_empty_chart_says_no_data_yet_and_draws_no_point() -> None:
    empty_line = LineChart("a", "A", "None yet.", "per run", Unit.RECORDS, (), empty_note="Runs record it.")
    no_points = LineChart(
        "b", "B", "None yet.", "per run", Unit.RECORDS, (Series("nothing"),), empty_note="Soon."
    )
    no_bars = BarChart("c", "C", "None yet.", "used", Unit.RATIO, (), empty_note="Vendors report quota.")
    for chart in (empty_line, no_points, no_bars):
        assert not chart.has_data
        html = str(render_chart(chart))
        svg = _svg(html)
        assert not _circles(svg)
        assert not [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]
        assert "No data yet" in [t.text for t in svg.iter(f"{SVG}text")]
        assert f"No data yet. {chart.empty_note}" in html
        assert "<table" not in html
        assert "legend" not in html


def test_every_text_from_data_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    line = LineChart(
        "c",
        f"Title {evil}",
        f"Desc {evil}",
        f"label {evil}",
        Unit.RECORDS,
        (Series(evil, (Point(T0, 1.0, note=evil), Point(T0 + timedelta(hours=1), 2.0))),),
    )
    bars = BarChart("d", "Bars", "d", "used", Unit.RATIO, (Bar(evil, 0.5, note=evil),))
    for chart in (line, bars):
        html = str(render_chart(chart))
        assert "<script" not in html
        assert "&lt;script&gt;" in html
        svg = _svg(html)  # still well-formed XML
        tooltips = [t.text or "" for t in svg.iter(f"{SVG}title")]
        assert any(evil in tip for tip in tooltips)  # the browser shows the text, as text


def test_charts_are_accessible_with_a_title_a_description_tooltips_and_a_data_table() -> None:
    series = Series(
        "pushed to hubspot", (Point(T0, 5.0, "donations_hourly"), Point(T0 + timedelta(hours=1), 7.0))
    )
    html = str(render_chart(_line(series)))
    svg = _svg(html)
    assert svg.get("role") == "img"
    assert svg.get("aria-label") == "Test chart"
    title_id, desc_id = (svg.get("aria-labelledby") or "").split()
    assert svg.find(f"{SVG}title[@id='{title_id}']") is not None
    desc = svg.find(f"{SVG}desc[@id='{desc_id}']")
    assert desc is not None
    assert desc.text == "What it shows."
    tips = [c.find(f"{SVG}title") for c in svg.iter(f"{SVG}circle")]
    assert [t.text for t in tips if t is not None] == [
        "pushed to hubspot: 5 records at 2026-11-20 12:00 UTC (donations_hourly)",
        "pushed to hubspot: 7 records at 2026-11-20 13:00 UTC",
    ]
    assert 'id="chart-test"' in html
    assert "<h3>Test chart</h3>" in html
    rows = re.findall(r"<tr><td>pushed to hubspot</td>.*?</tr>", html)
    assert len(rows) == 2
    assert "5 records" in rows[0]
    # no style attribute anywhere: the page's CSP allows the hashed stylesheet only
    assert "style=" not in html
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "per run (records)" in texts
    assert "run started (UTC)" in texts


def test_bars_rise_in_proportion_to_their_values() -> None:
    chart = BarChart(
        "quota-used",
        "Quota used",
        "Share used.",
        "quota used",
        Unit.RATIO,
        (Bar("hubspot", 0.5, "125,000 of 250,000 left"), Bar("braze", 1.0)),
        y_max=1.0,
    )
    svg = _svg(render_chart(chart))
    bars = [r for r in svg.iter(f"{SVG}rect") if r.get("class") == "bar"]
    assert [b.get("data-label") for b in bars] == ["hubspot", "braze"]
    heights = [float(b.get("height", "nan")) for b in bars]
    assert heights[1] == pytest.approx(PLOT.bottom - PLOT.top)
    assert heights[0] == pytest.approx(heights[1] / 2)
    for b in bars:
        assert float(b.get("y", "nan")) + float(b.get("height", "nan")) == pytest.approx(PLOT.bottom)
        assert PLOT.left <= float(b.get("x", "nan")) <= PLOT.right
    first_tip = bars[0].find(f"{SVG}title")
    assert first_tip is not None
    assert first_tip.text == "hubspot: 50.0% (125,000 of 250,000 left)"


def test_scale_maps_a_domain_onto_a_range_and_a_point_domain_to_the_middle() -> None:
    assert scale(5, 0, 10, 100, 200) == 150
    assert scale(0, 0, 10, 200, 100) == 200  # y grows downwards in SVG
    assert scale(3, 3, 3, 0, 10) == 5
