"""Server-rendered SVG charts (no JavaScript, no library, no CDN).

Each chart is drawn in a 360-unit-wide viewBox and scales to its container, so text stays
legible on a 375 px phone and the charts print as vectors. Labels of horizontal bars sit on
their own line above the bar (long Chinese place names never squeeze the bars).
"""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

WIDTH = 360
FONT = 11


def _svg(height: float, title: str, body: list[str], cls: str) -> Markup:
    return Markup(
        f'<svg class="chart {cls}" viewBox="0 0 {WIDTH} {height:.0f}" width="100%" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" font-size="{FONT}" '
        f'font-family="sans-serif"><title>{escape(title)}</title>{"".join(body)}</svg>')


def _nice_max(peak: int) -> int:
    """The axis maximum: 1, 2 or 5 times a power of ten, at least peak."""
    if peak <= 5:
        return max(peak, 1)
    magnitude = 10 ** (len(str(peak)) - 1)
    return next(m * magnitude for m in (1, 2, 5, 10) if peak <= m * magnitude)


def legend(series: Sequence[tuple[str, str]], y: float) -> tuple[list[str], float]:
    """Swatches and names, wrapped over lines; returns the elements and the height used."""
    out, x, line = [], 0.0, 0
    for name, color in series:
        w = 16 + len(name) * (FONT if any(ord(ch) > 0x2e80 for ch in name) else FONT * 0.6) + 10
        if x + w > WIDTH and x > 0:
            x, line = 0.0, line + 1
        top = y + line * 16
        out.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="11" height="11" fill="{color}"/>'
                   f'<text x="{x + 15:.1f}" y="{top + 10:.1f}">{escape(name)}</text>')
        x += w
    return out, (line + 1) * 16


def stacked_columns(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]], title: str,
                    cls: str = "") -> Markup:
    """Columns (e.g. one per month), each stacked from the series (name, color, values)."""
    n = len(labels)
    totals = [sum(s[2][i] for s in series) for i in range(n)]
    top, plot_h, left = 8.0, 150.0, 28.0
    peak = _nice_max(max(totals, default=0))
    step = (WIDTH - left) / max(n, 1)
    bar = step * 0.7
    body: list[str] = []
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        body.append(f'<line x1="{left}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                    f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555">{round(peak * frac)}</text>')
    for i in range(n):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        for name, color, values in series:
            v = values[i]
            if not v:
                continue
            h = plot_h * v / peak
            y -= h
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                        f'<title>{escape(labels[i])} {escape(name)}: {v}</title></rect>')
        if totals[i]:
            body.append(f'<text x="{x + bar / 2:.1f}" y="{y - 2:.1f}" text-anchor="middle" font-size="9">'
                        f'{totals[i]}</text>')
        if n <= 12 or i % 2 == 0:
            body.append(f'<text x="{x + bar / 2:.1f}" y="{top + plot_h + 12:.1f}" text-anchor="middle" '
                        f'font-size="9" fill="#333">{escape(labels[i])}</text>')
    items, used = legend([(s[0], s[1]) for s in series], top + plot_h + 22)
    body += items
    return _svg(top + plot_h + 22 + used, title, body, cls)


def stacked_bars(rows: Sequence[tuple[str, Sequence[int]]], series: Sequence[tuple[str, str]], title: str,
                 cls: str = "", empty: str = "") -> Markup:
    """Horizontal bars, one per row (label above its bar), stacked from the series (name, color)."""
    peak = max((sum(v) for _, v in rows), default=0) or 1
    body: list[str] = []
    y = 4.0
    for label, values in rows:
        body.append(f'<text x="0" y="{y + 10:.1f}" fill="#222">{escape(label)}</text>')
        y += 14
        x = 0.0
        width = WIDTH - 40
        for (name, color), v in zip(series, values, strict=True):
            if not v:
                continue
            w = width * v / peak
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="12" fill="{color}">'
                        f'<title>{escape(label)} {escape(name)}: {v}</title></rect>')
            x += w
        body.append(f'<text x="{x + 4:.1f}" y="{y + 10:.1f}" fill="#222">{" / ".join(str(v) for v in values)}</text>')
        y += 20
    if not rows and empty:
        body.append(f'<text x="0" y="{y + 10:.1f}" fill="#666">{escape(empty)}</text>')
        y += 20
    items, used = legend(series, y + 2)
    body += items
    return _svg(y + 2 + used, title, body, cls)


def funnel(steps: Sequence[tuple[str, int]], color: str, title: str, cls: str = "") -> Markup:
    """Steps as centred bars narrowing with their counts (e.g. referred → accepted → completed)."""
    peak = max((n for _, n in steps), default=0) or 1
    body: list[str] = []
    y = 4.0
    for i, (label, n) in enumerate(steps):
        w = max(WIDTH * 0.9 * n / peak, 2)
        x = (WIDTH - w) / 2
        share = f" ({round(100 * n / steps[0][1])}%)" if i and steps[0][1] else ""
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="26" rx="3" fill="{color}" '
                    f'opacity="{1 - 0.2 * i:.1f}"><title>{escape(label)}: {n}</title></rect>'
                    f'<text x="{WIDTH / 2}" y="{y + 17:.1f}" text-anchor="middle" fill="#000" '
                    f'stroke="#fff" stroke-width="3" paint-order="stroke">{escape(label)}: {n}{share}</text>')
        y += 32
    return _svg(y, title, body, cls)
