"""Draw the scaling curves of bench/results/scaling.json as PNG plots (docs/bench/scaling_<stage>.png).

One figure per stage, two panels side by side against the number of records (logarithmic): wall
seconds on the left (logarithmic too, so a straight line of slope 1 is linear growth, drawn dashed
through the largest point), peak memory in MiB from zero on the right, each point labelled with its
value. matplotlib draws them with the
Agg backend and without the metadata that changes between runs, so the same result draws the same
file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Figure size in inches and resolution: 1,000 x 400 pixels.
FIGSIZE = (10.0, 4.0)
DPI = 100


def series(result: Mapping[str, Any]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Return ``{stage: {"s": [(records, seconds)], "MiB": [(records, MiB)]}}`` from the scaling
    result's metrics (each carries ``stage`` and ``records``), sorted by records."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: {"s": [], "MiB": []})
    for entry in result["metrics"]:
        stage, records = entry.get("stage"), entry.get("records")
        if stage is None or records is None or entry["unit"] not in ("s", "MiB"):
            continue
        out[str(stage)][entry["unit"]].append((float(records), float(entry["value"])))
    return {stage: {unit: sorted(points) for unit, points in units.items()} for stage, units in out.items()}


def _short(value: float, digits: int = 3) -> str:
    """Write an axis or point value briefly, to ``digits`` significant digits: 1.2M, 300k, 45.6, 0.12."""
    for bound, suffix in ((1e6, "M"), (1e3, "k"), (1.0, "")):
        if abs(value) >= bound * (1 - 0.5 * 10 ** (1 - digits)) or bound == 1.0:
            text = f"{value / bound:.{digits}g}"
            return (text if "e" not in text else f"{value / bound:.0f}") + suffix
    return str(value)


def render_stage(stage: str, points: Mapping[str, list[tuple[float, float]]], title: str, path: Path) -> Path:
    """Draw one stage's time and memory against records into ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=FIGSIZE, dpi=DPI)
    for ax, unit, colour, ylabel in (
        (axes[0], "s", "tab:blue", "wall time (s)"),
        (axes[1], "MiB", "tab:orange", "peak memory (MiB)"),
    ):
        xs = [x for x, _ in points.get(unit, [])]
        ys = [y for _, y in points.get(unit, [])]
        ax.plot(xs, ys, marker="o", color=colour, label="measured")
        if unit == "s" and len(xs) > 1 and xs[-1] > 0:
            # Linear growth through the largest point: where the curve runs parallel to it, time
            # grows with records; above it at the small end, a fixed cost dominates there.
            ax.plot(
                xs,
                [ys[-1] * x / xs[-1] for x in xs],
                linestyle="--",
                color="grey",
                linewidth=1,
                label="linear",
            )
            ax.legend(loc="upper left", fontsize=8)
        for x, y in zip(xs, ys, strict=True):
            ax.annotate(_short(y), (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        if xs and min(xs) > 0:
            ax.set_xscale("log")
        if unit == "s" and ys and min(ys) > 0:
            ax.set_yscale("log")
        ax.margins(x=0.08, y=0.15)
        short = FuncFormatter(lambda v, _pos: _short(v))
        if xs:  # a tick at every measured size
            ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v, 2)))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_major_formatter(short)
        # Under a decade tall, a log axis has one major tick or none: label the minor ones too.
        low, high = ax.get_ylim()
        narrow = ax.get_yscale() == "log" and low > 0 and high / low < 10
        ax.yaxis.set_minor_formatter(short if narrow else NullFormatter())
        if unit == "MiB":  # memory from zero: a flat line is a flat line
            ax.set_ylim(bottom=0, top=max(ys, default=1) * 1.15)
        ax.set_xlabel("records")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})
    plt.close(fig)
    return path


def render_scaling(result: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Draw ``scaling_<stage>.png`` in ``out_dir`` for every stage of the scaling result."""
    titles = result["parameters"].get("stage_titles", {})
    machine = result.get("machine", {})
    where = f"{machine.get('cpu_count', '?')} cores, {machine.get('memory_gib', '?')} GiB"
    return [
        render_stage(
            stage,
            points,
            f"{titles.get(stage, stage)}: time and peak memory against records ({where})",
            out_dir / f"scaling_{stage}.png",
        )
        for stage, points in sorted(series(result).items())
    ]
