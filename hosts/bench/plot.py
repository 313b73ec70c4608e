"""A dependency-free SVG chart of benchmark throughput: one panel against partitions,
one against N, a line per (workload, host)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from hosts.bench.runner import Result

WIDTH, HEIGHT, MARGIN = 420, 280, 50
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _panel(
    results: Sequence[Result], x_of: Callable[[Result], int], fixed: Callable[[Result], int],
    title: str, x_label: str, left: int,
) -> list[str]:
    series: dict[str, dict[int, float]] = {}
    held = [fixed(r) for r in results]
    if held:  # the other dimension is held at its most measured value
        common = max(set(held), key=held.count)
        results = [r for r in results if fixed(r) == common]
        title = f"{title} ({'N' if x_label == 'partitions' else 'partitions'} = {common})"
    for r in results:
        series.setdefault(f"{r.workload} / {r.host}", {})[x_of(r)] = r.throughput
    series = {k: v for k, v in series.items() if len(v) > 1}
    out = [f'<text x="{left + WIDTH / 2}" y="20" text-anchor="middle" font-size="14">'
           f"{escape(title)}</text>"]
    if not series:
        return [*out, f'<text x="{left + 20}" y="60" font-size="12">(no sweep measured)</text>']
    xs = sorted({x for points in series.values() for x in points})
    top = max(y for points in series.values() for y in points.values()) * 1.1
    def px(x: int) -> float:
        span = (len(xs) - 1) or 1
        return left + MARGIN + (WIDTH - 2 * MARGIN) * xs.index(x) / span
    def py(y: float) -> float:
        return HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * y / top
    out.append(f'<line x1="{left + MARGIN}" y1="{HEIGHT - MARGIN}" x2="{left + WIDTH - MARGIN}" '
               f'y2="{HEIGHT - MARGIN}" stroke="black"/>')
    out.append(f'<line x1="{left + MARGIN}" y1="{MARGIN}" x2="{left + MARGIN}" '
               f'y2="{HEIGHT - MARGIN}" stroke="black"/>')
    for x in xs:
        out.append(f'<text x="{px(x)}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle" '
                   f'font-size="11">{x}</text>')
    for frac in (0.0, 0.5, 1.0):
        value = top / 1.1 * frac
        out.append(f'<text x="{left + MARGIN - 4}" y="{py(value) + 4}" text-anchor="end" '
                   f'font-size="10">{value:,.0f}</text>')
    out.append(f'<text x="{left + WIDTH / 2}" y="{HEIGHT - 12}" text-anchor="middle" '
               f'font-size="11">{escape(x_label)} (throughput per second)</text>')
    for i, (name, points) in enumerate(sorted(series.items())):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in sorted(points.items()))
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out.append(f'<text x="{left + MARGIN + 6}" y="{MARGIN + 14 * i}" font-size="11" '
                   f'fill="{color}">{escape(name)}</text>')
    return out


def throughput_svg(results: Sequence[Result]) -> str:
    measured = [r for r in results if r.workload not in ("replay", "snapshot-size", "latency")]
    body = _panel(measured, lambda r: r.partitions, lambda r: r.n,
                  "throughput against partitions", "partitions", 0)
    body += _panel(measured, lambda r: r.n, lambda r: r.partitions,
                   "throughput against N", "N", WIDTH)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * WIDTH}" height="{HEIGHT}" '
            f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n'
            + "\n".join(body) + "\n</svg>\n")
