"""The dispatch-quality chart: PNG through matplotlib when it is installed, else a plain SVG."""

from __future__ import annotations

from pathlib import Path

from bench.sim import SimResult

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def write_chart(results: list[SimResult], stem: Path) -> Path:
    """Bars of p99 (and mean) completion time per policy and load; returns the file written."""
    try:
        import matplotlib
    except ImportError:
        return _write_svg(results, stem.with_suffix(".svg"))
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    loads = sorted({r.load for r in results})
    policies = list(dict.fromkeys(r.policy for r in results))
    by_key = {(r.policy, r.load): r for r in results}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    width = 0.8 / len(policies)
    for ax, metric, title in ((axes[0], "mean_s", "mean"), (axes[1], "p99_s", "p99")):
        for i, policy in enumerate(policies):
            xs = [j + (i - (len(policies) - 1) / 2) * width for j in range(len(loads))]
            ys = [getattr(by_key[policy, load], metric) for load in loads]
            ax.bar(xs, ys, width, label=policy, color=_COLOURS[i % len(_COLOURS)])
        ax.set_xticks(range(len(loads)), [f"{load:.0%} load" for load in loads])
        ax.set_ylabel("completion time (s, service mean 1/speed)")
        ax.set_title(f"{title} completion time, workers of speed 1, 2, 4")
        ax.grid(axis="y", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    path = stem.with_suffix(".png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_svg(results: list[SimResult], path: Path) -> Path:
    """A grouped bar chart of p99 completion time, written by hand (no plotting library)."""
    loads = sorted({r.load for r in results})
    policies = list(dict.fromkeys(r.policy for r in results))
    by_key = {(r.policy, r.load): r for r in results}
    top = max(r.p99_s for r in results) * 1.1
    width_px, height_px, left, bottom = 640, 360, 60, 300
    group_px = (width_px - left - 160) / len(loads)
    bar_px = group_px * 0.8 / len(policies)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width_px}" height="{height_px}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="20" font-size="13">p99 completion time (s) per policy</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{width_px - 160}" y2="{bottom}" stroke="#333"/>',
    ]
    for j, load in enumerate(loads):
        x0 = left + j * group_px + group_px * 0.1
        parts.append(f'<text x="{x0}" y="{bottom + 16}">{load:.0%} load</text>')
        for i, policy in enumerate(policies):
            value = by_key[policy, load].p99_s
            h = (bottom - 40) * value / top
            x = x0 + i * bar_px
            parts.append(
                f'<rect x="{x:.1f}" y="{bottom - h:.1f}" width="{bar_px * 0.9:.1f}" '
                f'height="{h:.1f}" fill="{_COLOURS[i % len(_COLOURS)]}"/>'
                f'<text x="{x:.1f}" y="{bottom - h - 3:.1f}" font-size="9">{value:.1f}</text>'
            )
    for i, policy in enumerate(policies):
        y = 50 + i * 18
        parts.append(
            f'<rect x="{width_px - 150}" y="{y - 9}" width="10" height="10" '
            f'fill="{_COLOURS[i % len(_COLOURS)]}"/>'
            f'<text x="{width_px - 135}" y="{y}">{policy}</text>'
        )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
    return path
