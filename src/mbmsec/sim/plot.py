"""Stacked line plots as hand-written SVG 1.1 (pure: data in, SVG text out; no plotting library).

A figure is a title and a list of :class:`Panel` s drawn one under the other, all the same width,
so panels that share an x quantity (virtual time) line up. A panel has a plot area with a frame,
grid lines, ticks at "nice" values (1, 2 or 5 times a power of ten; decades on a log axis),
axis labels, a title, shaded x ranges (:attr:`Panel.spans`: an outage), dashed vertical marks
(:attr:`Panel.marks`: an MSK change) and its series; the legend sits right of the plot area so
it never covers data. Every value is mapped into the plot area (and clamped to it), so the drawing
stays inside the viewBox whatever the data.

The output is meant for programs too: each panel is ``<g id="panel-KEY" class="panel">``, each
series a ``<polyline id="KEY-SERIES" class="series ...">`` (an empty series is an empty
``<g class="series empty">``), and text is XML-escaped (control characters dropped).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from ..errors import ConfigError

__all__ = ["PALETTE", "Panel", "Series", "nice_ticks", "render_svg"]

# Okabe-Ito colour-blind-safe palette.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")

WIDTH = 960
LEFT = 78  # plot area left edge (room for y tick labels and the y label)
PLOT_W = 620
LEGEND_X = LEFT + PLOT_W + 22
TITLE_H = 44
PANEL_TOP = 30  # panel title above the plot area
PLOT_H = 180
PANEL_BOTTOM = 52  # x ticks and x label under the plot area
PANEL_H = PANEL_TOP + PLOT_H + PANEL_BOTTOM
LEGEND_CHARS = 30  # legend labels wrap at this many characters

_ID_RE = re.compile(r"[^A-Za-z0-9_-]+")
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Series:
    """One line of a panel: ``points`` are (x, y) pairs in data units.

    ``step``: draw as steps that hold each y until the next x (histograms of per-bucket counts
    whose x is the bucket start, empirical CDFs). ``color`` defaults to the palette entry of the
    series' position; ``dash`` draws a dashed line.
    """

    key: str
    label: str
    points: tuple[tuple[float, float], ...]
    step: bool = False
    color: str | None = None
    dash: bool = False
    width: float = 1.6


@dataclass(frozen=True)
class Panel:
    """One plot: axes, series, shaded ``spans`` ((x0, x1, label)) and vertical ``marks`` (x).

    ``x_range`` / ``y_range`` fix an axis (otherwise it covers the data; y starts at 0 unless
    ``y_from_zero`` is False). ``x_log`` draws x on a log10 scale (non-positive x are clamped
    to the smallest positive one). ``marks_label`` names the marks in the legend.
    """

    key: str
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    x_log: bool = False
    x_range: tuple[float, float] | None = None
    y_range: tuple[float, float] | None = None
    y_from_zero: bool = True
    spans: tuple[tuple[float, float, str], ...] = ()
    marks: tuple[float, ...] = ()
    marks_label: str = ""
    note: str = ""


def _text(s: str) -> str:
    """``s`` escaped for XML text and attribute values (quotes too); control chars dropped."""
    return escape(_CTRL_RE.sub("", s), {'"': "&quot;"})


def _ident(s: str) -> str:
    """An XML-name-safe identifier derived from ``s`` (for ids and class names)."""
    out = _ID_RE.sub("-", s).strip("-") or "x"
    return out if out[0].isalpha() else "x" + out


def _num(v: float) -> str:
    """A coordinate with at most two decimals and no trailing zeros."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def fmt_tick(v: float) -> str:
    """A tick label: integers without a decimal point, others with up to 4 significant digits."""
    if v == 0:
        return "0"
    if abs(v) >= 1e6 or abs(v) < 1e-3:
        return f"{v:.3g}"
    if float(v).is_integer():
        return str(int(v))
    return f"{v:.4g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> tuple[float, float, list[float]]:
    """Ticks at 1, 2 or 5 times a power of ten covering ``[lo, hi]`` with about ``n`` steps.

    Returns ``(lo', hi', ticks)``: the range widened outwards to whole steps, and the ticks.
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError("axis range must be finite")
    if hi < lo:
        lo, hi = hi, lo
    if hi - lo < 1e-9 * max(1.0, abs(lo), abs(hi)):  # a single value (or nearly): widen
        c = lo if abs(lo) >= 1e-9 else 0.0
        lo, hi = (0.0, 2 * c) if c > 0 else ((2 * c, 0.0) if c < 0 else (-1.0, 1.0))
    raw = (hi - lo) / max(n, 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1.0, 2.0, 5.0, 10.0) if m * mag >= raw * (1 - 1e-9))
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    ticks = [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    return ticks[0], ticks[-1], ticks


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Whole decades covering ``[lo, hi]``; ticks at each decade, and at 2 and 5 times each
    decade when there are at most three."""
    a = math.floor(math.log10(lo) + 1e-9)
    b = math.ceil(math.log10(hi) - 1e-9)
    if b <= a:
        b = a + 1
    mults = (1.0, 2.0, 5.0) if b - a <= 3 else (1.0,)
    ticks = [float(f"{m * 10.0**k:.12g}") for k in range(a, b) for m in mults]
    return 10.0**a, 10.0**b, [*ticks, 10.0**b]


class _Axes:
    """Data -> pixel mapping of one panel's plot area (top-left at ``x0, y0``)."""

    def __init__(self, panel: Panel, y0: float) -> None:
        self.x0, self.y0 = float(LEFT), y0
        pts = [p for s in panel.series for p in s.points]
        xs = [x for x, _ in pts if math.isfinite(x)]
        ys = [y for _, y in pts if math.isfinite(y)]
        self.log = panel.x_log
        if self.log:
            pos = [x for x in xs if x > 0]
            self.min_pos = min(pos) if pos else 1.0
            lo, hi = panel.x_range or ((min(pos), max(pos)) if pos else (0.1, 10.0))
            self.xlo, self.xhi, self.xticks = _log_ticks(max(lo, 1e-12), max(hi, lo, 1e-12))
        else:
            self.min_pos = 0.0
            lo, hi = panel.x_range or ((min(xs), max(xs)) if xs else (0.0, 1.0))
            if panel.x_range is not None and hi > lo:
                self.xlo, self.xhi = lo, hi
                self.xticks = [t for t in nice_ticks(lo, hi, 8)[2] if lo <= t <= hi]
            else:
                self.xlo, self.xhi, self.xticks = nice_ticks(lo, hi, 8)
        if panel.y_range is not None:
            self.ylo, self.yhi = panel.y_range
            self.yticks = [t for t in nice_ticks(*panel.y_range)[2] if self.ylo <= t <= self.yhi]
        else:
            lo = min(ys) if ys else 0.0
            hi = max(ys) if ys else 1.0
            if panel.y_from_zero:
                lo, hi = min(lo, 0.0), max(hi, 1.0 if hi <= 0 else hi)
            self.ylo, self.yhi, self.yticks = nice_ticks(lo, hi)

    def sx(self, x: float) -> float:
        if self.log:
            x = x if x > 0 else max(self.min_pos, 1e-12)
            f = (math.log10(x) - math.log10(self.xlo)) / (
                math.log10(self.xhi) - math.log10(self.xlo)
            )
        else:
            f = (x - self.xlo) / ((self.xhi - self.xlo) or 1.0)
        return self.x0 + PLOT_W * min(max(f, 0.0), 1.0)

    def sy(self, y: float) -> float:
        f = (y - self.ylo) / ((self.yhi - self.ylo) or 1.0)
        return self.y0 + PLOT_H * (1.0 - min(max(f, 0.0), 1.0))


def _points(s: Series, ax: _Axes) -> str:
    pts = [(x, y) for x, y in s.points if math.isfinite(x) and math.isfinite(y)]
    if s.step:
        stepped: list[tuple[float, float]] = []
        for k, (x, y) in enumerate(pts):
            if k:
                stepped.append((x, pts[k - 1][1]))
            stepped.append((x, y))
        pts = stepped
    out: list[str] = []
    for x, y in pts:
        p = f"{_num(ax.sx(x))},{_num(ax.sy(y))}"
        if not out or out[-1] != p:
            out.append(p)
    return " ".join(out)


def _panel(panel: Panel, top: float, pid: str) -> list[str]:
    ax = _Axes(panel, top + PANEL_TOP)
    x0, y0, x1, y1 = ax.x0, ax.y0, ax.x0 + PLOT_W, ax.y0 + PLOT_H
    o = [f'<g id="panel-{pid}" class="panel">']
    o.append(
        f'<text class="panel-title" x="{_num(x0)}" y="{_num(top + 18)}" font-size="14" '
        f'font-weight="bold">{_text(panel.title)}</text>'
    )
    o.append(
        f'<rect class="plot-area" x="{_num(x0)}" y="{_num(y0)}" width="{PLOT_W}" '
        f'height="{PLOT_H}" fill="#ffffff" stroke="#444444" stroke-width="1"/>'
    )
    # shaded spans under the grid and data
    o.append('<g class="spans">')
    for k, (a, b, label) in enumerate(panel.spans):
        sa, sb = ax.sx(min(a, b)), ax.sx(max(a, b))
        o.append(
            f'<rect class="span" x="{_num(sa)}" y="{_num(y0)}" width="{_num(max(sb - sa, 1.0))}" '
            f'height="{PLOT_H}" fill="#888888" fill-opacity="0.16"/>'
        )
        if label:
            o.append(
                f'<text class="span-label" x="{_num(sa + 3)}" y="{_num(y0 + 12 + 12 * (k % 3))}" '
                f'font-size="10" fill="#555555">{_text(label)}</text>'
            )
    o.append("</g>")
    # grid, ticks and tick labels
    o.append('<g class="axis x-axis">')
    for t in ax.xticks:
        sx = ax.sx(t)
        o.append(
            f'<line class="grid" x1="{_num(sx)}" y1="{_num(y0)}" x2="{_num(sx)}" '
            f'y2="{_num(y1)}" stroke="#e4e4e4" stroke-width="1"/>'
        )
        o.append(
            f'<line class="tick" x1="{_num(sx)}" y1="{_num(y1)}" x2="{_num(sx)}" '
            f'y2="{_num(y1 + 5)}" stroke="#444444"/>'
        )
        o.append(
            f'<text class="tick-label" x="{_num(sx)}" y="{_num(y1 + 18)}" '
            f'text-anchor="middle">{_text(fmt_tick(t))}</text>'
        )
    o.append(
        f'<text class="axis-label" x="{_num(x0 + PLOT_W / 2)}" y="{_num(y1 + 40)}" '
        f'text-anchor="middle">{_text(panel.x_label)}</text>'
    )
    o.append("</g>")
    o.append('<g class="axis y-axis">')
    for t in ax.yticks:
        sy = ax.sy(t)
        o.append(
            f'<line class="grid" x1="{_num(x0)}" y1="{_num(sy)}" x2="{_num(x1)}" '
            f'y2="{_num(sy)}" stroke="#e4e4e4" stroke-width="1"/>'
        )
        o.append(
            f'<line class="tick" x1="{_num(x0 - 5)}" y1="{_num(sy)}" x2="{_num(x0)}" '
            f'y2="{_num(sy)}" stroke="#444444"/>'
        )
        o.append(
            f'<text class="tick-label" x="{_num(x0 - 8)}" y="{_num(sy + 4)}" '
            f'text-anchor="end">{_text(fmt_tick(t))}</text>'
        )
    cy = y0 + PLOT_H / 2
    o.append(
        f'<text class="axis-label" x="{_num(x0 - 56)}" y="{_num(cy)}" text-anchor="middle" '
        f'transform="rotate(-90 {_num(x0 - 56)} {_num(cy)})">{_text(panel.y_label)}</text>'
    )
    o.append("</g>")
    # marks, then data, clipped to the plot area
    o.append(f'<g class="data" clip-path="url(#clip-{pid})">')
    for m in panel.marks:
        sx = ax.sx(m)
        o.append(
            f'<line class="mark" x1="{_num(sx)}" y1="{_num(y0)}" x2="{_num(sx)}" '
            f'y2="{_num(y1)}" stroke="#777777" stroke-width="1" stroke-dasharray="4 3"/>'
        )
    legend: list[tuple[str, str, bool, str]] = []
    for k, s in enumerate(panel.series):
        sid = _ident(f"{pid}-{s.key}")
        color = s.color or PALETTE[k % len(PALETTE)]
        cls = "series series-" + (_ID_RE.sub("-", s.key).strip("-") or "x")
        pts = _points(s, ax)
        if not pts:
            o.append(f'<g id="{sid}" class="{cls} empty"/>')
        else:
            dash = ' stroke-dasharray="6 3"' if s.dash else ""
            o.append(
                f'<polyline id="{sid}" class="{cls}" fill="none" stroke="{_text(color)}" '
                f'stroke-width="{_num(s.width)}" stroke-linejoin="round"{dash} '
                f'points="{pts}"/>'
            )
        legend.append((color, s.label + ("" if pts else " (no data)"), s.dash, "line"))
    o.append("</g>")
    if not any(s.points for s in panel.series):
        o.append(
            f'<text class="no-data" x="{_num(x0 + PLOT_W / 2)}" y="{_num(cy)}" '
            f'text-anchor="middle" fill="#888888">no data</text>'
        )
    if panel.marks and panel.marks_label:
        legend.append(("#777777", panel.marks_label, True, "mark"))
    names = sorted({s[2] for s in panel.spans if s[2]})
    if len(names) > 3:
        names = [*names[:3], "..."]
    if panel.spans:
        label = "shaded: " + ", ".join(names) if names else "shaded"
        legend.append(("#888888", label, False, "span"))
    o.extend(_legend(legend, y0))
    lines = _wrap(panel.note, LEGEND_CHARS + 4) if panel.note else []
    for k, line in enumerate(lines):
        o.append(
            f'<text class="note" x="{_num(LEGEND_X)}" y="{_num(y1 - 14 * (len(lines) - 1 - k))}" '
            f'font-size="11" fill="#555555">{_text(line)}</text>'
        )
    o.append("</g>")
    return o


def _legend(entries: list[tuple[str, str, bool, str]], top: float) -> list[str]:
    o = ['<g class="legend">']
    y = top + 8
    for color, label, dash, kind in entries:
        if kind == "span":
            o.append(
                f'<rect x="{LEGEND_X}" y="{_num(y - 5)}" width="22" height="10" fill="#888888" '
                f'fill-opacity="0.3"/>'
            )
        else:
            d = ' stroke-dasharray="6 3"' if dash else ""
            o.append(
                f'<line x1="{LEGEND_X}" y1="{_num(y)}" x2="{LEGEND_X + 22}" y2="{_num(y)}" '
                f'stroke="{_text(color)}" stroke-width="2"{d}/>'
            )
        for line in _wrap(label, LEGEND_CHARS):
            o.append(
                f'<text class="legend-label" x="{LEGEND_X + 28}" y="{_num(y + 4)}">'
                f"{_text(line)}</text>"
            )
            y += 14
        y += 4
    o.append("</g>")
    return o


def _wrap(text: str, width: int) -> list[str]:
    """``text`` split at spaces into lines of at most ``width`` characters (longer words stay
    whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def render_svg(panels: Sequence[Panel], title: str = "", subtitle: str = "") -> str:
    """Render ``panels`` stacked under ``title`` as one SVG 1.1 document; return its text.

    Raises :class:`~mbmsec.errors.ConfigError` for duplicate panel keys or non-finite fixed
    axis ranges.
    """
    pids = [_ident(p.key) for p in panels]
    if len(set(pids)) != len(pids):
        raise ConfigError("panel keys must be distinct")
    height = TITLE_H + PANEL_H * max(len(panels), 1)
    o = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, '
        f'Helvetica, sans-serif" font-size="12" fill="#222222">',
        f"<title>{_text(title)}</title>",
        "<defs>",
    ]
    for k, pid in enumerate(pids):
        y0 = TITLE_H + PANEL_H * k + PANEL_TOP
        o.append(
            f'<clipPath id="clip-{pid}"><rect x="{LEFT}" y="{y0}" width="{PLOT_W}" '
            f'height="{PLOT_H}"/></clipPath>'
        )
    o.append("</defs>")
    o.append(f'<rect class="background" width="{WIDTH}" height="{height}" fill="#ffffff"/>')
    o.append(
        f'<text class="figure-title" x="{LEFT}" y="22" font-size="16" font-weight="bold">'
        f"{_text(title)}</text>"
    )
    if subtitle:
        o.append(
            f'<text class="figure-subtitle" x="{LEFT}" y="38" font-size="11" fill="#555555">'
            f"{_text(subtitle)}</text>"
        )
    for k, (panel, pid) in enumerate(zip(panels, pids, strict=True)):
        o.extend(_panel(panel, TITLE_H + PANEL_H * k, pid))
    o.append("</svg>")
    return "\n".join(o) + "\n"
