"""sim/plot.py: hand-written SVG 1.1 parses, names its panels and series, scales values into the
plot area, escapes text, and survives empty data."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mbmsec.errors import ConfigError
from mbmsec.sim.metrics import ecdf
from mbmsec.sim.plot import Panel, Series, nice_ticks, render_svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("version") == "1.1"
    return root


def by_id(root: ET.Element, ident: str) -> ET.Element:
    found = [e for e in root.iter() if e.get("id") == ident]
    assert len(found) == 1, ident
    return found[0]


def plot_area(panel: ET.Element) -> tuple[float, float, float, float]:
    rect = next(e for e in panel.iter() if e.get("class") == "plot-area")
    x, y = float(rect.get("x", "")), float(rect.get("y", ""))
    return x, y, x + float(rect.get("width", "")), y + float(rect.get("height", ""))


def points(poly: ET.Element) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (p.split(",") for p in poly.get("points", "").split())]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter("{http://www.w3.org/2000/svg}text")]


def two_panels() -> list[Panel]:
    line = Series("up", "going up", ((0.0, 0.0), (10.0, 5.0), (20.0, 10.0)))
    hist = Series("bars", "per bucket", ((0.0, 3.0), (1.0, 7.0), (2.0, 1.0), (3.0, 1.0)), step=True)
    return [
        Panel("first", "First panel", "time (s)", "count", (line,), x_range=(0.0, 20.0)),
        Panel("second", "Second panel", "time (s)", "rate", (hist,), spans=((1.0, 2.0, "down"),),
              marks=(1.5,), marks_label="change"),
    ]  # fmt: skip


def test_panels_and_series_by_id_and_class() -> None:
    root = parse(render_svg(two_panels(), "A figure", "sub"))
    w, h = root.get("width"), root.get("height")
    assert root.get("viewBox") == f"0 0 {w} {h}"
    panels = [e for e in root.iter() if e.get("class") == "panel"]
    assert [p.get("id") for p in panels] == ["panel-first", "panel-second"]
    up = by_id(root, "first-up")
    assert up.tag == "{http://www.w3.org/2000/svg}polyline"
    assert "series-up" in (up.get("class") or "").split()
    assert by_id(root, "second-bars").get("class") == "series series-bars"
    # each panel's data is clipped to its own plot area
    clips = {e.get("id") for e in root.iter("{http://www.w3.org/2000/svg}clipPath")}
    assert clips == {"clip-first", "clip-second"}
    t = texts(root)
    for label in ("A figure", "sub", "First panel", "going up", "per bucket", "change", "count"):
        assert label in t
    second = by_id(root, "panel-second")
    assert [e for e in second.iter() if e.get("class") == "span"]
    assert [e for e in second.iter() if e.get("class") == "mark"]
    assert "shaded: down" in texts(second)


def test_values_scale_into_the_plot_area() -> None:
    root = parse(render_svg(two_panels()))
    x0, y0, x1, y1 = plot_area(by_id(root, "panel-first"))
    pts = points(by_id(root, "first-up"))
    # x range fixed to the data range, y ticks 0..10: first point bottom-left, last top-right
    assert pts[0] == pytest.approx((x0, y1))
    assert pts[-1] == pytest.approx((x1, y0))
    assert pts[1] == pytest.approx(((x0 + x1) / 2, (y0 + y1) / 2))
    vb = [float(v) for v in (root.get("viewBox") or "").split()]
    for panel_id, series_id in (("panel-first", "first-up"), ("panel-second", "second-bars")):
        x0, y0, x1, y1 = plot_area(by_id(root, panel_id))
        assert 0 <= x0 < x1 <= vb[2] and 0 <= y0 < y1 <= vb[3]
        for x, y in points(by_id(root, series_id)):
            assert x0 - 1e-6 <= x <= x1 + 1e-6 and y0 - 1e-6 <= y <= y1 + 1e-6


def test_step_series_hold_each_value_until_the_next_x() -> None:
    root = parse(render_svg(two_panels()))
    pts = points(by_id(root, "second-bars"))
    # 4 points -> 7 vertices (horizontal then vertical), the last vertical of length 0 dropped
    assert len(pts) == 6
    for k in range(1, len(pts) - 1, 2):
        assert pts[k][1] == pts[k - 1][1]  # horizontal run at the previous value
        assert pts[k][0] == pts[k + 1][0]  # then a vertical jump


def test_out_of_range_values_are_clamped_into_the_plot_area() -> None:
    s = Series("wild", "wild", ((-50.0, -3.0), (5.0, 0.5), (500.0, 99.0), (7.0, math.nan)))
    panel = Panel("p", "t", "x", "y", (s,), x_range=(0.0, 10.0), y_range=(0.0, 1.0))
    root = parse(render_svg([panel]))
    x0, y0, x1, y1 = plot_area(by_id(root, "panel-p"))
    pts = points(by_id(root, "p-wild"))
    assert len(pts) == 3  # NaN dropped
    assert pts[0] == pytest.approx((x0, y1)) and pts[2] == pytest.approx((x1, y0))


def test_text_is_escaped() -> None:
    nasty = "a<b & \"c\" 'd' </svg> ]]> \x01end"
    s = Series('k<"1">', nasty, ((0.0, 1.0), (1.0, 2.0)))
    panel = Panel("p&q", nasty, nasty, nasty, (s,), spans=((0.0, 0.5, nasty),))
    text = render_svg([panel], title=nasty, subtitle=nasty)
    root = parse(text)
    clean = nasty.replace("\x01", "")
    title = root.find("svg:title", NS)
    assert title is not None and title.text == clean
    assert texts(root).count(clean) >= 5  # figure title, subtitle, panel title, axis labels, span
    assert "</svg> ]]>" not in text.replace("&lt;", "<").split("<title>")[0]
    # ids and classes are restricted to name characters
    for e in root.iter():
        for attr in ("id", "class"):
            v = e.get(attr)
            assert v is None or all(c.isalnum() or c in "-_ " for c in v), v


def test_empty_series_and_empty_panels_render() -> None:
    empty = Series("none", "nothing", ())
    panels = [
        Panel("e", "Empty series", "x", "y", (empty,)),
        Panel("n", "No series", "x", "y", ()),
        Panel("l", "Empty log", "x", "y", (empty,), x_log=True),
    ]
    root = parse(render_svg(panels))
    g = by_id(root, "e-none")
    assert g.tag == "{http://www.w3.org/2000/svg}g" and "empty" in (g.get("class") or "")
    assert "nothing (no data)" in texts(root)
    assert texts(root).count("no data") == 3
    assert not list(root.iter("{http://www.w3.org/2000/svg}polyline"))
    assert parse(render_svg([])).get("height")


def test_log_axis_ticks_and_non_positive_values() -> None:
    s = Series("lat", "latency", ((0.0, 0.0), (0.02, 0.5), (3.0, 1.0)), step=True)
    panel = Panel("lat", "CDF", "s", "fraction", (s,), x_log=True, y_range=(0.0, 1.0))
    root = parse(render_svg([panel]))
    labels = texts(by_id(root, "panel-lat"))
    for t in ("0.01", "0.02", "0.05", "0.1", "1", "5", "10"):
        assert t in labels  # three decades: ticks at 1, 2, 5 times each
    x0, _, x1, _ = plot_area(by_id(root, "panel-lat"))
    xs = [x for x, _ in points(by_id(root, "lat-lat"))]
    assert all(x0 <= x <= x1 for x in xs)
    # 0.02 sits log10(2)/3 of the way along 0.01..10; x=0 is drawn at the smallest positive x
    assert xs[0] == pytest.approx(x0 + (x1 - x0) * math.log10(2) / 3, abs=0.01)
    wide = Panel("w", "", "", "", (Series("w", "w", ((1e-3, 0.0), (1e3, 1.0))),), x_log=True)
    labels = texts(parse(render_svg([wide])))
    assert "0.002" not in labels and "0.001" in labels and "1000" in labels


def test_duplicate_panel_keys_are_refused() -> None:
    p = Panel("same", "a", "x", "y", ())
    with pytest.raises(ConfigError):
        render_svg([p, p])


@given(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(0, 1e6, allow_nan=False),
    st.integers(2, 10),
)
def test_nice_ticks_cover_the_range_with_round_steps(lo: float, span: float, n: int) -> None:
    hi = lo + span
    a, b, ticks = nice_ticks(lo, hi, n)
    step = ticks[1] - ticks[0]
    assert a <= lo + 1e-6 * step and b >= hi - 1e-6 * step
    assert ticks[0] == a and ticks[-1] == b
    assert 2 <= len(ticks) <= 2 * n + 3
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert min(abs(mantissa - m) for m in (1, 2, 5, 10)) < 1e-6
    assert all(
        math.isclose(ticks[k + 1] - ticks[k], step, rel_tol=1e-6, abs_tol=1e-9 * max(1, abs(b)))
        for k in range(len(ticks) - 1)
    )


def test_ecdf_points() -> None:
    assert ecdf([]) == ()
    pts = ecdf([3.0, 1.0, 2.0, 2.0])
    assert pts == ((1.0, 0.0), (1.0, 0.25), (2.0, 0.5), (2.0, 0.75), (3.0, 1.0))
    many = ecdf([float(v) for v in range(10_000)], max_points=100)
    assert len(many) == 101 and many[-1] == (9999.0, 1.0)
    ys = [y for _, y in many]
    assert ys == sorted(ys) and many[0] == (0.0, 0.0)
