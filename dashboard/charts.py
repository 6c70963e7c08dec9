"""Small server-side SVG charts for the metrics page: bars per day, or a line for rates.

No chart library at run time: the page stays readable without JavaScript, and each bar or
point carries a <title> with its exact value for hover and screen readers.
"""

from __future__ import annotations

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from dashboard.metrics import Series

W, H, PAD_L, PAD_B, PAD_T = 320, 120, 34, 18, 8


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "no data"
    if unit == "%":
        return f"{value:.0f}%"
    if value >= 100 or value == int(value):
        return f"{value:.0f} {unit}"
    return f"{value:.2f} {unit}"


def chart_svg(series: Series) -> SafeString:
    values = [v for _, v in series.points if v is not None]
    top = 100.0 if series.unit == "%" else max(values, default=0) or 1.0
    n = max(len(series.points), 1)
    step = (W - PAD_L) / n
    plot_h = H - PAD_B - PAD_T

    def y(value: float) -> float:
        return PAD_T + plot_h * (1 - value / top)

    parts = [
        format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="axis"/>', PAD_L, W, H - PAD_B, H - PAD_B
        ),
        format_html(
            '<text x="{}" y="{}" class="tick">{}</text>', 2, PAD_T + 8, _fmt(top, "").strip()
        ),
        format_html('<text x="{}" y="{}" class="tick">0</text>', 2, H - PAD_B),
    ]
    points = []
    for i, (day, value) in enumerate(series.points):
        x = PAD_L + i * step
        label = f"{day:%b %d}: {_fmt(value, series.unit)}"
        if series.kind == "bar":
            if value:
                parts.append(
                    format_html(
                        '<rect x="{}" y="{}" width="{}" height="{}" class="bar">'
                        "<title>{}</title></rect>",
                        f"{x + 1:.1f}",
                        f"{y(value):.1f}",
                        f"{max(step - 2, 1):.1f}",
                        f"{H - PAD_B - y(value):.1f}",
                        label,
                    )
                )
        elif value is not None:
            cx = x + step / 2
            points.append(f"{cx:.1f},{y(value):.1f}")
            parts.append(
                format_html(
                    '<circle cx="{}" cy="{}" r="2.5" class="dot"><title>{}</title></circle>',
                    f"{cx:.1f}",
                    f"{y(value):.1f}",
                    label,
                )
            )
        if i in (0, n - 1):
            parts.append(
                format_html(
                    '<text x="{}" y="{}" class="tick" text-anchor="{}">{}</text>',
                    f"{x + (0 if i == 0 else step):.1f}",
                    H - 4,
                    "start" if i == 0 else "end",
                    f"{day:%b %d}",
                )
            )
    if len(points) > 1:
        parts.insert(3, format_html('<polyline points="{}" class="line"/>', " ".join(points)))
    return mark_safe(
        f'<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{series.title} per day">'
        + "".join(parts)
        + "</svg>"
    )


def summary(series: Series) -> str:
    if series.kind == "bar":
        return _fmt(series.total, series.unit.split("/")[0]) + " in the window"
    return "latest " + _fmt(series.latest, series.unit)
