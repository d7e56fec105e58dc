"""Trends of gated metrics across past runs (``harness eval --history DIR``), as small
inline SVG sparklines for the scorecard (``templates/trend.html.j2``).

The past values come from ``results["history"]`` (written by ``harness.history.past_series``);
this run's value is the last point, drawn in the verdict's colour of its gate. A line holds
only the past runs measured on what this one was (base model, suite version, item count);
the others are counted beside it, by why (``left_out_text``).
"""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 180, 36, 4


def sparkline(values: list[float], label: str, failed: bool) -> Markup:
    """A polyline of ``values`` (oldest first), the last point marked; escaped label."""
    finite = [v for v in values if v is not None]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    span = (hi - lo) or 1.0
    n = len(values)
    pts = []
    for i, v in enumerate(values):
        if v is None:
            continue
        x = PAD + (WIDTH - 2 * PAD) * (i / (n - 1) if n > 1 else 0.5)
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * ((v - lo) / span if hi > lo else 0.5)
        pts.append((x, y))
    body = []
    if len(pts) > 1:
        body.append('<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="'
                    + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts) + '"/>')
    for x, y in pts[:-1]:
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="1.8" fill="#2563eb"/>')
    if pts:
        x, y = pts[-1]
        color = "#dc2626" if failed else "#059669"
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
                  f'height="{HEIGHT}" role="img" aria-label="{escape(label)}" class="trend">'
                  f"<title>{escape(label)}</title>{''.join(body)}</svg>")


def left_out_text(left_out: dict | None) -> str | None:
    """``3 earlier run(s) not drawn: another base model (2), item count not recorded (1)`` or
    None ("... not recorded": this run or the past one lacks it)."""
    if not left_out or not left_out.get("runs"):
        return None
    why = ", ".join(f"{reason} ({n})" for reason, n in (left_out.get("why") or {}).items())
    return f"{left_out['runs']} earlier run(s) not drawn: {why}"


def trend_view(results: dict) -> dict | None:
    """Rows for the trend partial: one per gated (suite, model, metric); None without history."""
    history = results.get("history")
    if not history:
        return None
    past = {(s["suite"], s["model"], s["metric"]): s["points"] for s in history.get("series") or []}
    # past runs measured on another base, suite version or item count: not on this line, said beside it
    left_out = {(s["suite"], s["model"], s["metric"]): s.get("left_out") for s in history.get("series") or []}
    rows, seen = [], set()
    for suite in results.get("suites") or []:
        for gate in suite.get("gates") or []:
            key = (suite.get("name"), gate.get("model"), gate.get("metric"))
            if key in seen:
                continue
            metric = ((suite.get("models") or {}).get(key[1]) or {}).get("metrics", {}).get(key[2])
            if metric is None:
                continue  # integrity and other gates without a metric value
            seen.add(key)
            failed = any(not g.get("passed") for g in suite.get("gates") or []
                         if (g.get("model"), g.get("metric")) == key[1:])
            values = [p.get("value") for p in past.get(key, [])] + [metric.get("value")]
            label = (f"{key[0]} / {key[1]} / {key[2]}: "
                     + ", ".join("–" if v is None else f"{v:.3g}" for v in values) + " (oldest first, this run last)")
            rows.append({"suite": key[0], "model": key[1], "metric": key[2], "runs": len(values),
                         "first": values[0], "last": values[-1], "failed": failed,
                         "svg": sparkline(values, label, failed), "left_out": left_out_text(left_out.get(key))})
    return {"runs": history.get("runs", 0), "rows": rows}
