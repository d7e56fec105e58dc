"""Inline SVG charts for the HTML report: no scripts, no network, print-friendly.

Each function returns ``Markup`` (safe to put in an autoescaped template); every
label that came from data is escaped here.
"""

from __future__ import annotations

import math
from typing import Sequence

from markupsafe import Markup, escape

PALETTE = ["#6b7280", "#2563eb", "#d97706", "#059669", "#7c3aed", "#db2777", "#0891b2", "#65a30d"]
FONT = "font-family=\"system-ui, -apple-system, 'Segoe UI', sans-serif\""


def model_color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    ticks = [round(start, 10)]
    while ticks[-1] < hi - step * 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 1:
        return f"{v:.3g}"
    return f"{v:.2g}"


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" preserveAspectRatio="xMinYMin meet" role="img" aria-label="{escape(label)}" {FONT} font-size="12" class="chart">'
            f"<title>{escape(label)}</title>")
    return Markup(head + "".join(body) + "</svg>")


CHAR_W = 6.8  # average width of a 12px system-ui character, for sizing label columns


def _text_w(text: str, size: float = 12) -> float:
    return len(text) * CHAR_W * size / 12


def _log_ticks(lo: float, hi: float) -> list[float]:
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    if a == b:
        b = a + 1
    return [10.0 ** k for k in range(a, b + 1)]


def bar_chart(title: str, rows: Sequence[dict], models: Sequence[str], colors: dict[str, str],
              scale: str = "unit", width: int = 1160) -> Markup:
    """Horizontal bars, one group per metric, one bar per model, all on ONE axis.

    ``rows``: ``[{"label": metric, "values": {model: (value, low, high)}}]``. ``scale``:
    ``"unit"`` (0 to 1, for proportions and other 0-1 scores), ``"log"`` (perplexity:
    powers of ten) or ``"linear"`` (0 to the largest value). Labels get the room they
    need (nothing is clipped); the SVG scales to the page width (CSS ``width: 100%``).
    """
    bar_h, gap, group_head = 16, 12, 18
    # group labels sit on their own line above the bars; only the model names share the bars' row
    label_w = max([_text_w(m, 11) for m in models] + [40]) + 16
    value_texts = []
    nums: list[float] = []
    for r in rows:
        for m in models:
            v = r["values"].get(m)
            if v and v[0] is not None and math.isfinite(v[0]):
                value_texts.append(_value_text(*v))
                nums += [x for x in v if x is not None and math.isfinite(x)]
    value_w = max([_text_w(t, 11) for t in value_texts] + [60]) + 12
    plot_w = max(width - label_w - value_w, 200)
    if scale == "unit":
        ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
    elif scale == "log":
        pos = [x for x in nums if x > 0]
        ticks = _log_ticks(min(pos), max(pos)) if pos else [1.0, 10.0]
    else:
        ticks = nice_ticks(min([0.0] + nums), max(nums + [1e-12])) if nums else [0.0, 1.0]
        if ticks[-1] <= ticks[0]:
            ticks = [ticks[0], ticks[0] + 1]
    lo, hi = ticks[0], ticks[-1]
    x0 = label_w

    def sx(v: float) -> float:
        if scale == "log":
            v = max(v, lo)
            frac = (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
        else:
            frac = (v - lo) / (hi - lo)
        return x0 + min(max(frac, 0.0), 1.0) * plot_w

    body: list[str] = []
    legend_x = 4.0
    for m in models:
        body.append(f'<rect x="{legend_x:.0f}" y="4" width="12" height="12" fill="{colors.get(m, "#6b7280")}"/>'
                    f'<text x="{legend_x + 16:.0f}" y="14">{escape(m)}</text>')
        legend_x += _text_w(m) + 34
    axis_note = {"unit": "axis 0–1, shared by every metric in this chart",
                 "log": "log scale, shared by every metric in this chart",
                 "linear": "one axis for this chart"}.get(scale, "")
    body.append(f'<text x="{width - 4}" y="14" text-anchor="end" fill="#6b7280" font-size="11">'
                f'{escape(axis_note)}</text>')
    top = 26
    y = top + 16
    for r in rows:
        body.append(f'<text x="4" y="{y + 12}" font-weight="600" font-size="11">{escape(r["label"])}</text>')
        y += group_head
        for m in models:
            v = r["values"].get(m)
            color = colors.get(m, "#6b7280")
            body.append(f'<text x="{x0 - 6}" y="{y + 12}" text-anchor="end" font-size="11" fill="#374151">'
                        f'{escape(m)}</text>')
            if v and v[0] is not None and math.isfinite(v[0]):
                value, low, high = v
                body.append(f'<rect x="{x0}" y="{y + 2}" width="{max(sx(value) - x0, 1.0):.1f}" '
                            f'height="{bar_h - 4}" fill="{color}" fill-opacity="0.8">'
                            f'<title>{escape(m)} {escape(r["label"])}: {escape(_value_text(*v))}</title></rect>')
                if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
                    cy = y + bar_h / 2
                    a, b = sx(low), sx(high)
                    body.append(f'<line x1="{a:.1f}" x2="{b:.1f}" y1="{cy}" y2="{cy}" stroke="#111827" '
                                f'stroke-width="1.4"/><line x1="{a:.1f}" x2="{a:.1f}" y1="{cy - 4}" '
                                f'y2="{cy + 4}" stroke="#111827"/><line x1="{b:.1f}" x2="{b:.1f}" '
                                f'y1="{cy - 4}" y2="{cy + 4}" stroke="#111827"/>')
                body.append(f'<text x="{x0 + plot_w + 8}" y="{y + 12}" font-size="11">'
                            f'{escape(_value_text(*v))}</text>')
            else:
                body.append(f'<text x="{x0 + 4}" y="{y + 12}" fill="#6b7280" font-size="11">no value</text>')
            y += bar_h
        y += gap
    # axis: grid lines and tick labels at the bottom, the same for every group
    grid = []
    for t in ticks:
        x = sx(t)
        grid.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + 14}" y2="{y - gap + 2}" stroke="#e5e7eb"/>'
                    f'<text x="{x:.1f}" y="{y + 8}" text-anchor="middle" font-size="10" fill="#374151">'
                    f'{escape(_fmt_tick(t))}</text>')
    return _svg(width, int(y + 16), title, grid + body)


def _value_text(value: float, low: float | None = None, high: float | None = None) -> str:
    text = _fmt_value(value)
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{_fmt_value(low)}, {_fmt_value(high)}]"
    return text


def _fmt_value(v: float) -> str:
    if v != 0 and (abs(v) >= 1000 or abs(v) < 0.001):
        return f"{v:.4g}"
    return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def line_chart(series: Sequence[dict], title: str, x_label: str, y_label: str,
               width: int = 1160, height: int = 300) -> Markup:
    """Lines over a shared x axis: ``[{"label", "points": [(x, y)], "color", "dashed"}]``."""
    left, right, top, bottom = 56, 150, 14, 40
    pw, ph = width - left - right, height - top - bottom
    pts = [(x, y) for s in series for x, y in s["points"] if math.isfinite(x) and math.isfinite(y)]
    if not pts:
        return _svg(width, 40, title, [f'<text x="4" y="20">{escape(title)}: no data</text>'])
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    xt, yt = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x_lo, x_hi, y_lo, y_hi = xt[0], xt[-1], yt[0], yt[-1]

    def sx(v: float) -> float:
        return left + (v - x_lo) / ((x_hi - x_lo) or 1) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y_lo) / ((y_hi - y_lo) or 1) * ph

    body = [f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#d1d5db"/>']
    for t in yt:
        body.append(f'<line x1="{left}" x2="{left + pw}" y1="{sy(t):.1f}" y2="{sy(t):.1f}" stroke="#f3f4f6"/>'
                    f'<text x="{left - 6}" y="{sy(t) + 4:.1f}" text-anchor="end" font-size="10">'
                    f'{escape(_fmt_tick(t))}</text>')
    for t in xt:
        body.append(f'<text x="{sx(t):.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="10">'
                    f'{escape(_fmt_tick(t))}</text>')
    body.append(f'<text x="{left + pw / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>')
    body.append(f'<text x="12" y="{top + ph / 2}" text-anchor="middle" '
                f'transform="rotate(-90 12 {top + ph / 2})">{escape(y_label)}</text>')
    for i, s in enumerate(series):
        p = [(x, y) for x, y in s["points"] if math.isfinite(x) and math.isfinite(y)]
        if not p:
            continue
        color = s.get("color", model_color(i))
        dash = ' stroke-dasharray="5 3"' if s.get("dashed") else ""
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in p)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"{dash}/>')
        if len(p) <= 40:
            body.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.2" fill="{color}"/>' for x, y in p)
        ly = top + 12 + i * 18
        body.append(f'<line x1="{left + pw + 10}" x2="{left + pw + 30}" y1="{ly - 4}" y2="{ly - 4}" '
                    f'stroke="{color}" stroke-width="2"{dash}/>'
                    f'<text x="{left + pw + 34}" y="{ly}">{escape(s["label"])}</text>')
    return _svg(width, height, title, body)


def distribution(groups: Sequence[dict], title: str, unit: str, width: int = 1160) -> Markup:
    """Box plot (quartiles, whiskers at min/max) with every value as a dot, per group.

    ``groups``: ``[{"label", "values": [float], "color"}]``.
    """
    left = max([_text_w(str(g["label"])) for g in groups] + [60]) + 20
    right, row_h = 20, 34
    vals = [v for g in groups for v in g["values"] if v is not None and math.isfinite(v)]
    if not vals:
        return _svg(width, 40, title, [f'<text x="4" y="20">{escape(title)}: no data</text>'])
    ticks = nice_ticks(min(0.0, min(vals)), max(vals))
    lo, hi = ticks[0], ticks[-1]
    pw = width - left - right
    height = 24 + len(groups) * row_h + 34

    def sx(v: float) -> float:
        return left + (v - lo) / ((hi - lo) or 1) * pw

    body = [f'<text x="4" y="14" font-weight="600">{escape(title)}</text>']
    axis_y = 24 + len(groups) * row_h
    for t in ticks:
        body.append(f'<line x1="{sx(t):.1f}" x2="{sx(t):.1f}" y1="22" y2="{axis_y}" stroke="#f3f4f6"/>'
                    f'<text x="{sx(t):.1f}" y="{axis_y + 14}" text-anchor="middle" font-size="10">'
                    f'{escape(_fmt_tick(t))}</text>')
    body.append(f'<text x="{left + pw / 2}" y="{axis_y + 30}" text-anchor="middle">{escape(unit)}</text>')
    for i, g in enumerate(groups):
        v = sorted(x for x in g["values"] if x is not None and math.isfinite(x))
        cy = 24 + i * row_h + row_h / 2
        color = g.get("color", model_color(i))
        body.append(f'<text x="{left - 8}" y="{cy + 4}" text-anchor="end">{escape(g["label"])}</text>')
        if not v:
            body.append(f'<text x="{left}" y="{cy + 4}" fill="#6b7280">no data</text>')
            continue
        q1, med, q3 = (_q(v, q) for q in (0.25, 0.5, 0.75))
        body.append(f'<line x1="{sx(v[0]):.1f}" x2="{sx(v[-1]):.1f}" y1="{cy}" y2="{cy}" stroke="{color}"/>'
                    f'<rect x="{sx(q1):.1f}" y="{cy - 9}" width="{max(sx(q3) - sx(q1), 1):.1f}" height="18" '
                    f'fill="{color}" fill-opacity="0.25" stroke="{color}"/>'
                    f'<line x1="{sx(med):.1f}" x2="{sx(med):.1f}" y1="{cy - 9}" y2="{cy + 9}" '
                    f'stroke="{color}" stroke-width="2.5"><title>{escape(g["label"])} median '
                    f'{escape(_fmt_tick(med))} {escape(unit)}</title></line>')
        for j, x in enumerate(v):
            jitter = ((j * 37) % 11 - 5) * 1.2
            body.append(f'<circle cx="{sx(x):.1f}" cy="{cy + jitter:.1f}" r="2" fill="{color}" fill-opacity="0.7"/>')
    return _svg(width, height, title, body)


def _q(sorted_values: list[float], q: float) -> float:
    pos = (len(sorted_values) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
