"""Reading benchmark results (``benchmarks/results/*.json``) and model cards for display.

Plain Python without Streamlit or the framework, so the figures show even while other parts are broken.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def load_benchmarks(directory: str | Path) -> list[tuple[str, dict | None, str | None]]:
    """Read every ``*.json`` in ``directory``: a list of ``(file name, parsed object, error)``.

    A file that is not valid JSON gets ``(name, None, reason)``; a missing directory gives ``[]``.
    """
    out = []
    for path in sorted(Path(directory).glob("*.json")):
        try:
            out.append((path.name, json.loads(path.read_text()), None))
        except (OSError, ValueError) as exc:
            out.append((path.name, None, f"could not read: {exc}"))
    return out


def flatten_numbers(obj, prefix: str = "") -> dict[str, float]:
    """All numeric leaves of a JSON object, keyed by their dotted path (list items by index)."""
    out: dict[str, float] = {}
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):
            out[prefix or "value"] = float(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_numbers(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten_numbers(v, f"{prefix}[{i}]"))
    return out


def records(obj) -> list[dict] | None:
    """The list of flat records in a benchmark result, if it has one (a top-level list of dicts or the
    first dict value that is one), else ``None``; used for tables and grouped bar charts."""
    candidates = [obj] if isinstance(obj, list) else list(obj.values()) if isinstance(obj, dict) else []
    for c in candidates:
        if isinstance(c, list) and c and all(isinstance(r, dict) for r in c):
            return [{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in c]
    return None


RATIO_WORDS = ("ratio", "speedup", "geomean")


def _item_label(item, i: int) -> str:
    """A short name for a list item: its name/op/shape field when it has one, else its index."""
    if isinstance(item, dict):
        if isinstance(item.get("threads"), int):
            label = f"{item['threads']} thread" + ("s" if item["threads"] != 1 else "")
            strategy = item.get("strategy")  # (benchmarks/cpu.py: whose threads, when several)
            return f"{label}, {strategy}" if isinstance(strategy, str) and strategy != "serial" else label
        for key in ("name", "op", "case", "layer", "shape"):
            v = item.get(key)
            if isinstance(v, dict):
                return " ".join(f"{k}{x}" for k, x in v.items())
            if isinstance(v, (list, tuple)):
                return "×".join(map(str, v)) + (f" {item['precision']}" if "precision" in item else "")
            if isinstance(v, str):
                return v
    return str(i)


NOT_FIGURES = ("targets", "machine", "meets")  # sections that describe the run, not its results


def _labelled_numbers(obj, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):
            out[prefix or "value"] = float(obj)
    elif isinstance(obj, dict):
        runs = obj.get("runs")
        for k, v in obj.items():
            if k in NOT_FIGURES:
                continue
            if k == "figures" and isinstance(runs, list) and runs:
                continue  # benchmarks/cpu.py repeats its first run as `figures`; `runs` has them all
            out.update(_labelled_numbers(v, f"{prefix} · {k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(_labelled_numbers(v, f"{prefix} [{_item_label(v, i)}]"))
    return out


def ratios(obj) -> dict[str, float]:
    """The numeric leaves that are ratios against a reference (their key names a ratio, a speedup or a
    geometric mean of those): the figures worth a chart, all in the same unit. Keys are readable paths
    (``figures · conv2d · shapes [N8 C64 HW32] · ratio``); a leading part common to all is dropped."""
    def is_ratio(key: str) -> bool:
        last = key.rsplit(" · ", 1)[-1].lower()
        # CPU-time ratios are a secondary view of the same measurement; a target is not a measurement
        return any(w in last for w in RATIO_WORDS) and not last.startswith(("cpu_time", "target"))

    found = {k: v for k, v in _labelled_numbers(obj).items() if is_ratio(k)}
    # container names say nothing on a chart label
    parts = [[x.removeprefix("runs [").removesuffix("]") if x.startswith("runs [") else x
              for x in k.split(" · ") if x not in ("figures", "results")] for k in found]
    drop = 0
    while parts and all(len(p) > drop + 1 and p[drop] == parts[0][drop] for p in parts):
        drop += 1
    return {" · ".join(p[drop:]): v for p, v in zip(parts, found.values())}


def flatten_flags(obj, prefix: str = "") -> dict[str, bool]:
    """The boolean leaves (e.g. a ``meets`` section saying which targets are reached), by dotted path."""
    out: dict[str, bool] = {}
    if isinstance(obj, bool):
        out[prefix or "value"] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten_flags(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten_flags(v, f"{prefix}[{i}]"))
    return out


def _flat_record(r: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in r.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_record(v, key + "."))
        elif isinstance(v, list):
            out[key] = ", ".join(map(str, v)) if all(not isinstance(x, (dict, list)) for x in v) else None
        else:
            out[key] = v
    return out


def tables(obj, prefix: str = "") -> list[tuple[str, list[dict]]]:
    """Every list of records (dicts) anywhere in ``obj``, as ``(dotted path, flat rows)``; nested dicts
    in a row become ``parent.child`` columns (e.g. a layer shape)."""
    found = []
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        found.append((prefix or "rows", [_flat_record(r) for r in obj]))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            found += tables(v, f"{prefix}.{k}" if prefix else str(k))
    return found


# ---------------------------------------------------------------------------------------- model cards
METRIC_SECTIONS = ("metrics", "validation", "test", "evaluation", "val_metrics", "test_metrics")


def _scalar(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_count(key: str) -> bool:
    k = key.lower()
    return k == "n" or k.startswith("n_") or k in ("tp", "fp", "tn", "fn", "epoch", "seconds", "seed")


def card_summary(card: dict) -> dict:
    """What a model card says, arranged for display.

    Returns ``facts`` (top-level text and short lists), ``headline`` (label → number: the overall
    metrics of each metric section, e.g. ``validation · macro_auroc``, counts left out) and ``tables``
    (title → rows: every mapping of name → metrics, e.g. per finding or per class)."""
    facts = {}
    for k, v in card.items():
        if isinstance(v, str) or _scalar(v):
            facts[k] = v
        elif isinstance(v, list) and len(v) <= 20 and all(isinstance(x, (str, int, float)) for x in v):
            facts[k] = ", ".join(map(str, v))
    headline: dict[str, float] = {}
    tables: dict[str, list[dict]] = {}

    def per_item_table(title: str, d: dict) -> bool:
        """name → {metric: number} becomes a table; True when ``d`` was one."""
        if d and all(isinstance(x, dict) for x in d.values()) and \
                all(any(_scalar(y) for y in x.values()) for x in d.values()):
            tables[title] = [{"name": name, **{m: y for m, y in x.items() if _scalar(y)}}
                             for name, x in d.items()]
            return True
        return False

    def walk(section: str, d: dict, depth: int, with_tables: bool) -> None:
        for k, v in d.items():
            if _scalar(v) and not _is_count(k):
                headline[f"{section} · {k}"] = float(v)
            elif isinstance(v, dict) and depth < 1:
                if not (with_tables and per_item_table(f"{section} · {k}", v)):
                    walk(f"{section} · {k}", v, depth + 1, False)

    # the first metric section gives the per-item tables; the others add their overall figures
    first = True
    for section in METRIC_SECTIONS:
        if isinstance(card.get(section), dict):
            walk(section, card[section], 0, first)
            first = False
    for k, v in card.items():
        if k.startswith("per_") and isinstance(v, dict):
            per_item_table(k, v)
    return {"facts": facts, "headline": headline, "tables": tables}


KEY_FIGURE_WORDS = ("fps", "latency", "per_s", "throughput", "share")


def key_figures(obj, limit: int = 8) -> dict[str, float]:
    """Speeds and latencies near the top of a result (``analyze_images_per_s``, ``e2e_realtime ·
    fps``, ``latency_ms_p95``...), for a row of metrics above the details; at most ``limit``."""
    out: dict[str, float] = {}
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        if k in NOT_FIGURES:
            continue
        items = [(k, v)] if not isinstance(v, dict) else [(f"{k} · {k2}", v2) for k2, v2 in v.items()]
        for name, x in items:
            if _scalar(x) and any(w in name.rsplit(" · ", 1)[-1].lower() for w in KEY_FIGURE_WORDS):
                out[name] = float(x)
    return dict(list(out.items())[:limit])
