"""Render the README's performance table from the benchmark results (bench/results/*.json).

``python bench/_report.py`` rewrites the table between the README's markers and the scaling plots
(docs/bench/*.png) from the results; ``--check`` only says whether the README is current. The
table has one row per headline figure of each result: the figure, its value, what it was
compared with in the same run (the ratio of ours to theirs), its floor or goal, whether that was
met, and the command that reproduces it. ``donor-sync bench`` calls this after a run.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO_ROOT, RESULTS_DIR, validate_result

README = REPO_ROOT / "README.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
#: The order of the table: the pipeline's order, then any other result by name.
ORDER = (
    "datagen",
    "dag_parse",
    "staging_copy",
    "standardize",
    "standardize_fields",
    "incremental_run",
    "e2e_hourly",
    "dedup_sample",
    "dedup_febrl",
    "match_one",
    "aggregates",
    "outbox_queue",
    "push_destinations",
    "fault_injection",
    "privacy",
    "scaling",
)
#: Units of measurement, written after a value (a ratio, a share or a count of things is written bare).
_UNITS = {"s", "ms", "min", "h", "B", "bytes", "KiB", "MiB", "GiB", "MB", "GB", "records/s", "rows/s"}
_TIME_UNITS = {"s", "ms", "min", "h"}
#: Words a metric's name writes in lower case.
_WORDS = {"rss": "RSS", "pss": "PSS", "f1": "F1", "cpu": "CPU", "api": "API"}


class MissingFieldError(KeyError):
    """A template names a figure the result does not hold."""


# -- loading ----------------------------------------------------------------------------------------


def load_results(folder: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Return every result in ``folder`` (``*.json``), in the table's order.

    :raises ValueError: a file is not valid JSON or does not follow the schema (naming the file).
    """
    results = []
    for path in sorted(folder.glob("*.json")):
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from exc
        problems = validate_result(payload)
        if problems:
            raise ValueError(f"{path}: {'; '.join(problems)}")
        results.append(payload)
    return sorted(results, key=_order)


def _order(result: Mapping[str, Any]) -> tuple[int, str]:
    name = str(result["name"])
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


# -- templates ---------------------------------------------------------------------------------------


def number(value: Any) -> str:
    """Write a figure the way the table does: integers with thousands separators, other numbers
    with three significant digits (trailing zeros from 1 up), lists joined, None as n/a."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "n/a"
        if value.is_integer() and abs(value) >= 100:
            return f"{int(value):,}"
        if abs(value) >= 1000:
            return f"{round(value):,}"
        if value == 0:
            return "0"
        # Trailing zeros kept from 1 up (50.0 s), not below (0.07 s).
        return f"{value:#.3g}".rstrip(".") if abs(value) >= 1 else f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(number(v) for v in value)
    return str(value)


def _walk(obj: Any, parts: Sequence[str], field: str) -> Any:
    """Follow ``parts`` into ``obj``; a key may itself hold dots (``pairs_at_0.5``), so the longest
    joined run of parts that is a key wins."""
    if not parts:
        return obj
    if isinstance(obj, list | tuple):
        try:
            return _walk(obj[int(parts[0])], parts[1:], field)
        except (ValueError, IndexError):
            raise MissingFieldError(field) from None
    if isinstance(obj, Mapping):
        for k in range(len(parts), 0, -1):
            key = ".".join(parts[:k])
            if key in obj:
                return _walk(obj[key], parts[k:], field)
    raise MissingFieldError(field)


class TemplateFormatter(string.Formatter):
    """Fill a headline template from one result (see ``_common.headline`` for the fields)."""

    def __init__(self, result: Mapping[str, Any], *, strict: bool = True) -> None:
        """Index the result's metrics and comparisons; ``strict``: a missing figure raises
        :class:`MissingFieldError` (else it is written n/a)."""
        super().__init__()
        self.result = result
        self.strict = strict
        self.metrics = {m["name"]: m for m in result["metrics"]}
        self.compared: dict[str, Any] = {}
        for i, entry in enumerate(result["compared"]):
            self.compared[str(i)] = entry
            self.compared.setdefault(str(entry.get("label") or entry["system"]), entry)

    def get_field(self, field_name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        """Resolve ``p.<parameter>``, ``c.<label or index>.<field>`` or ``<metric>[.<detail>]``."""
        try:
            return self._resolve(field_name), field_name
        except MissingFieldError:
            if self.strict:
                raise
            return None, field_name

    def _resolve(self, field_name: str) -> Any:
        parts = field_name.split(".")
        if parts[0] == "p":
            return _walk(self.result["parameters"], parts[1:], field_name)
        if parts[0] == "c":
            return _walk(self.compared, parts[1:], field_name)
        for k in range(len(parts), 0, -1):
            name = ".".join(parts[:k])
            if name in self.metrics:
                rest = parts[k:]
                return _walk(self.metrics[name], rest, field_name) if rest else self.metrics[name]["value"]
        raise MissingFieldError(field_name)

    def format_field(self, value: Any, format_spec: str) -> str:
        """Write ``value``: three significant digits by default; ``MB``, ``GB`` (bytes), ``ms``
        (seconds), ``inv`` (1 / value) or a Python format spec otherwise."""
        if value is None or isinstance(value, str | bool | list | tuple) or not format_spec:
            return number(value) if not isinstance(value, str) else value
        if format_spec == "MB":
            return number(value / 1e6)
        if format_spec == "GB":
            return number(value / 1e9)
        if format_spec == "ms":
            return number(value * 1000)
        if format_spec == "inv":
            return number(1 / value) if value else "n/a"
        if format_spec == "," and isinstance(value, float) and value.is_integer():
            value = int(value)
        return str(format(value, format_spec))


def fill(template: str, result: Mapping[str, Any], *, strict: bool = False) -> str:
    """Return ``template`` filled from ``result`` (a figure it does not hold written n/a).

    :raises MissingFieldError: ``strict`` and the template names a figure the result does not hold.
    """
    return TemplateFormatter(result, strict=strict).format(template)


def missing_fields(result: Mapping[str, Any]) -> list[str]:
    """Return the fields the result's headlines name that it does not hold (each row written n/a)."""
    missing = []
    for line in result["headlines"]:
        for key in ("figure", "value"):
            try:
                fill(line[key], result, strict=True)
            except MissingFieldError as exc:
                missing.append(f"{result['name']}: {exc.args[0]}")
    return missing


# -- the table ---------------------------------------------------------------------------------------


def _label(entry: Mapping[str, Any]) -> str:
    if entry.get("label"):
        return str(entry["label"])
    return " ".join(_WORDS.get(w, w) for w in str(entry["name"]).replace("_", " ").split())


def _unit(unit: Any) -> str:
    return f" {unit}" if unit in _UNITS or str(unit).startswith("requests per") else ""


def _goal_text(entry: Mapping[str, Any]) -> str:
    goal = str(entry["goal"]).strip()
    if goal and goal[0].isdigit():
        goal = f"= {goal}"
    return f"{_label(entry)} {goal}{_unit(entry.get('unit'))}"


def _compared_text(entry: Mapping[str, Any]) -> str:
    """Phrase one comparison: ``1.32x psql \\copy (2.48 s)``, ``11.9x faster than pandas (39.3 s)``."""
    label = str(entry.get("label") or entry["system"])
    ratio = entry.get("ratio")
    unit = str(entry.get("unit", ""))
    theirs = entry.get("value")
    bare = unit in ("", "ratio", "share", "prf", "count")
    shown = f" ({number(theirs)}{'' if bare else ' ' + unit})" if theirs is not None else ""
    if not isinstance(ratio, int | float):
        return f"{label}{shown}"
    if ratio < 1 and entry.get("better") == "lower" and ratio > 0:
        word = "faster than" if unit in _TIME_UNITS else "less than"
        return f"{number(1 / ratio)}x {word} {label}{shown}"
    return f"{number(float(ratio))}x {label}{shown}"


def _fallback_headlines(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row for a result that declares no headline: its goals, else its first three metrics."""
    chosen = [m for m in result["metrics"] if "goal" in m] or list(result["metrics"][:3])
    value = ", ".join(f"{_label(m)} {{{m['name']}}}{_unit(m['unit'])}" for m in chosen)
    return [{"figure": str(result["title"]), "value": value, "metrics": [m["name"] for m in chosen]}]


def rows(result: Mapping[str, Any]) -> list[list[str]]:
    """Return the table rows of one result: figure, value, compared, goal, met, command."""
    metrics = {m["name"]: m for m in result["metrics"]}
    checks = {c["name"]: c for c in result["checks"]}
    command = f"`{result['command']}` → `bench/results/{result['name']}.json` ({result['recorded_at'][:10]})"
    out = []
    for line in result["headlines"] or _fallback_headlines(result):
        figure = fill(line["figure"], result)
        value = fill(line["value"], result)
        named = list(line.get("metrics", []))
        goals = [metrics[n] for n in named if n in metrics and "goal" in metrics[n]]
        compared = [c for c in result["compared"] if c.get("metric") in named]
        verdicts = [m.get("met") for m in goals]
        verdicts += [c.get("met") for c in compared if "goal" in c]
        verdicts += [checks[n].get("ok") for n in named if n in checks]
        goal_texts = [_goal_text(m) for m in goals]
        goal_texts += [
            f"ratio to {c.get('label') or c['system']} {c['goal']}" for c in compared if "goal" in c
        ]
        if "goal" in line:
            goal_texts = [str(line["goal"])]
        judged = [v for v in verdicts if isinstance(v, bool)]
        met = "" if not judged else ("yes" if all(judged) else "**no**")
        out.append(
            [
                figure,
                value,
                "; ".join(_compared_text(c) for c in compared),
                "; ".join(goal_texts),
                met,
                command,
            ]
        )
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_table(results: Iterable[Mapping[str, Any]]) -> str:
    """Return the Markdown table of every headline of ``results`` (in the order given)."""
    header = ["figure", "result", "compared in the same run", "floor / goal", "met", "reproduce"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for result in results:
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows(result)]
    return "\n".join(lines)


def render_section(results: Sequence[Mapping[str, Any]]) -> str:
    """Return the generated block (markers included) for the README."""
    return "\n".join(
        [
            BEGIN,
            "<!-- generated by `donor-sync bench --render-only` from bench/results/*.json: edit the"
            " benchmarks, not this table -->",
            "",
            render_table(results),
            "",
            END,
        ]
    )


def replace_section(text: str, section: str) -> str:
    """Return ``text`` with the block between the markers replaced by ``section``.

    :raises ValueError: the markers are missing or out of order.
    """
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN} ... {END} block")
    return text[:start] + section + text[end + len(END) :]


def current_section(text: str) -> str:
    """Return the block between the markers (markers included) as it stands in ``text``."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {BEGIN} ... {END} block")
    return text[start : end + len(END)]


def validate_file(path: Path) -> dict[str, list[str]]:
    """Return one result file's schema problems and the figures its README rows name but lack."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return {"problems": [f"{path}: not readable JSON ({exc})"], "warnings": []}
    problems = [f"{path.name}: {p}" for p in validate_result(payload)]
    return {"problems": problems, "warnings": [] if problems else missing_fields(payload)}


def render_readme(readme: Path = README, folder: Path = RESULTS_DIR) -> bool:
    """Rewrite the README's table from the results in ``folder``; return whether it changed."""
    text = readme.read_text(encoding="utf-8")
    updated = replace_section(text, render_section(load_results(folder)))
    if updated != text:
        readme.write_text(updated, encoding="utf-8")
    return updated != text


def main(argv: list[str] | None = None) -> int:
    """Render (or ``--check``) the README table and redraw the scaling plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--plots-dir", type=Path, default=REPO_ROOT / "docs" / "bench")
    parser.add_argument("--check", action="store_true", help="only say whether the README is current")
    parser.add_argument("--no-plots", action="store_true", help="leave the PNG plots alone")
    parser.add_argument(
        "--validate",
        nargs="+",
        type=Path,
        metavar="RESULT",
        help="print, as JSON, each result file's schema problems and the figures its rows lack",
    )
    args = parser.parse_args(argv)
    if args.validate:
        print(json.dumps({str(path): validate_file(path) for path in args.validate}))
        return 0
    try:
        results = load_results(args.results_dir)
        section = render_section(results)
        text = args.readme.read_text(encoding="utf-8")
        if args.check:
            if current_section(text) != section:
                print(f"{args.readme}: the performance table is stale: run donor-sync bench --render-only")
                return 1
            print(f"{args.readme}: the performance table is current")
            return 0
        changed = render_readme(args.readme, args.results_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.readme}: performance table {'rewritten' if changed else 'already current'}")
    scaling = next((r for r in results if r["name"] == "scaling"), None)
    if scaling is not None and not args.no_plots:
        from _plots import render_scaling

        for path in render_scaling(scaling, args.plots_dir):
            print(f"drew {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
