"""Plots (matplotlib, Agg), written as PNGs byte for byte the same for the same runs.

Error bars are drawn only where there is a spread (two or more seeds, a standard error above
zero): a single seed shows a bare bar, never a zero-width error bar. Legends sit beside the
axes, never over the bars.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

from experiments.compare.runs import RunRecord, arm_order, metric_key, task_order
from experiments.compare.tables import (HEADLINE_METRICS, Summary, one_seed, summarize,
                                        table_cells)
from nlu.atomic import atomic_open


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    # no timestamp in the PNG metadata, so identical data gives identical files
    with atomic_open(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=110, bbox_inches="tight",
                       metadata={"Software": None})
    return path


def _legend_beside(axes) -> None:
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0.0)


def _bars(axes, positions: list[float], summaries: list[Summary], width: float,
          label: str) -> None:
    """One arm's bars (in %), with error bars only where there is a spread."""
    axes.bar(positions, [100 * s.mean for s in summaries], width, label=label)
    spread = [(position, s) for position, s in zip(positions, summaries)
              if s.standard_error]  # None (one seed) or 0.0: nothing to draw
    if spread:
        axes.errorbar([position for position, _ in spread], [100 * s.mean for _, s in spread],
                      yerr=[100 * s.standard_error for _, s in spread], fmt="none",
                      ecolor="black", elinewidth=1.2, capsize=0)  # no cap: a tiny spread stays tiny


def _spread_note(summaries: list[Summary], over: str) -> str:
    if all(summary.n == 1 for summary in summaries):
        return "one seed, no error bars"
    return f"mean ± std-err over {over}"


def plot_arm_bars(records: list[RunRecord], metric: str, title: str, path: Path,
                  split: str = "test") -> Path | None:
    """Grouped bars: one group per task, one bar per arm, error bars = std-err over seeds."""
    cells = table_cells(records, lambda r: metric_key(r, split, metric))
    if not cells:
        return None
    plt = _pyplot()
    tasks = sorted({task for _, task in cells}, key=task_order)
    arms = arm_order(arm for arm, _ in cells)
    width = 0.8 / len(arms)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(tasks) * max(1, len(arms) / 3)), 4))
    for index, arm in enumerate(arms):
        positions = [task_index + (index - (len(arms) - 1) / 2) * width
                     for task_index, task in enumerate(tasks) if (arm, task) in cells]
        summaries = [cells[(arm, task)] for task in tasks if (arm, task) in cells]
        _bars(axes, positions, summaries, width, arm)
    axes.set_xticks(range(len(tasks)), tasks)
    axes.set_ylabel(title)
    axes.set_title(f"{split} {title} per arm ({_spread_note(list(cells.values()), 'seeds')})")
    _legend_beside(axes)
    path = _save(figure, path)
    plt.close(figure)
    return path


# where a point's label may go, in order of preference: (dx, dy) in points, alignment
LABEL_PLACES = [((6, 4), "left"), ((6, -12), "left"), ((-6, 4), "right"), ((-6, -12), "right"),
                ((6, 16), "left"), ((6, -24), "left"), ((-6, 16), "right"), ((-6, -24), "right")]


def _place_labels(figure, axes, points: list[tuple[float, float]], labels: list[str]) -> None:
    """Label each point at the first place where its text overlaps no label placed before
    and no other point (else at the first place): close points stay readable."""
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    marks = [axes.transData.transform(point) for point in points]
    taken = []
    for index, (point, label) in enumerate(zip(points, labels)):
        others = [mark for other, mark in enumerate(marks) if other != index]
        for place, (offset, align) in enumerate(LABEL_PLACES):
            text = axes.annotate(label, point, xytext=offset, textcoords="offset points",
                                 fontsize=8, ha=align)
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            clear = (not any(box.overlaps(other) for other in taken)
                     and not any(box.x0 - 4 <= x <= box.x1 + 4 and box.y0 - 4 <= y <= box.y1 + 4
                                 for x, y in others))
            if clear or place == len(LABEL_PLACES) - 1:
                if not clear:  # nowhere clear: the first place is the least surprising
                    text.remove()
                    text = axes.annotate(label, point, xytext=LABEL_PLACES[0][0],
                                         textcoords="offset points", fontsize=8)
                    box = text.get_window_extent(renderer)
                taken.append(box)
                break
            text.remove()


def plot_quality_diversity(records: list[RunRecord], path: Path) -> Path | None:
    """BLEU-4 (quality) against self-BLEU-4 (lack of diversity), one colour per sampler."""
    points: dict[tuple[str, str, str], tuple[list[float], list[float]]] = defaultdict(
        lambda: ([], []))
    for record in records:
        bleu = record.metrics.get("synthetic/bleu4")
        self_bleu = record.metrics.get("synthetic/self_bleu4")
        if record.sampler is not None and bleu is not None and self_bleu is not None:
            xs, ys = points[(record.sampler, record.arm, record.task)]
            xs.append(self_bleu)
            ys.append(bleu)
    if not points:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    samplers = sorted({sampler for sampler, _, _ in points})
    colours = plt.get_cmap("tab10")
    keys = sorted(points)
    means = [(statistics.fmean(points[key][0]), statistics.fmean(points[key][1]))
             for key in keys]
    for index, sampler in enumerate(samplers):
        chosen = [mean for key, mean in zip(keys, means) if key[0] == sampler]
        axes.scatter([x for x, _ in chosen], [y for _, y in chosen], color=colours(index % 10),
                     label=sampler, zorder=3)
    axes.margins(x=0.25, y=0.15)  # room for the labels inside the axes
    axes.set_xlabel("self-BLEU-4 (lower = more diverse)")
    axes.set_ylabel("BLEU-4 vs real dev (higher = closer to real)")
    axes.set_title("quality vs diversity of the synthetic sets per sampling setting")
    axes.legend(fontsize="small", title="sampler", loc="upper left", bbox_to_anchor=(1.01, 1.0),
                borderaxespad=0.0)
    _place_labels(figure, axes, means, [f"{arm} ({task})" for _, arm, task in keys])
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_synthetic_metrics(records: list[RunRecord], path: Path) -> Path | None:
    """Shares in % per generator arm (over every task and seed): diversity, novelty, validity,
    slot coverage, agreement and what the gate kept."""
    names = [name for name in ("distinct_1", "distinct_2", "novelty", "validity",
                               "slot_coverage", "nlu_agreement")
             if any(f"synthetic/{name}" in record.metrics for record in records)]
    keys = [f"synthetic/{name}" for name in names] + ["gate/kept_rate"]
    arms = arm_order(record.arm for record in records if "gate/kept_rate" in record.metrics)
    if not arms:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) * max(1, len(arms) / 3)), 4))
    width = 0.8 / len(arms)
    shown: list[Summary] = []
    for index, arm in enumerate(arms):
        summaries = [summarize([r.metrics[key] for r in records if r.arm == arm and key in r.metrics]
                               or [math.nan]) for key in keys]
        positions = [position + (index - (len(arms) - 1) / 2) * width
                     for position in range(len(keys))]
        _bars(axes, positions, summaries, width, arm)
        shown += summaries
    axes.set_xticks(range(len(keys)), [key.split("/", 1)[1] for key in keys], rotation=20)
    axes.set_ylabel("%")
    over = "tasks; one seed" if one_seed(records) else "tasks and seeds"
    axes.set_title(f"synthetic-set metrics per arm ({_spread_note(shown, over)})")
    _legend_beside(axes)
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_scale(records: list[RunRecord], metric: str, path: Path,
               split: str = "test") -> Path | None:
    """``split``'s ``metric`` against the training set's size (multiples of the real target train
    set), one line per kind of added data (``RunRecord.family``), mean over tasks and seeds."""
    points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        total = record.metrics.get("data/target_total")
        real = record.metrics.get("data/target_train")
        value = record.metrics.get(metric_key(record, split, metric))
        if total is None or not real or value is None:
            continue
        families = ([record.family] if record.family else  # none: every line's start
                    sorted({other.family for other in records if other.family}))
        for family in families:
            points[family][round(total / real, 1)].append(value)
    if len(points) < 2:
        return None
    plt = _pyplot()
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for family in sorted(points):
        sizes = sorted(points[family])
        axes.plot(sizes, [100 * statistics.fmean(points[family][size]) for size in sizes],
                  marker="o", label=family)
    axes.set_xscale("log")
    # ticks at the sizes the study has, as multiples: 1x 2x 3x, not 10^0 2x10^0
    axes.xaxis.set_major_locator(FixedLocator(sorted({size for family in points.values()
                                                      for size in family})))
    axes.xaxis.set_major_formatter(FuncFormatter(lambda size, _: f"{size:g}x"))
    axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xlabel("target training utterances (x the real target train set)")
    axes.set_ylabel(f"{split} {HEADLINE_METRICS[metric][0]}")
    axes.set_title(f"{split} {HEADLINE_METRICS[metric][0]} against synthetic scale "
                   "(mean over tasks and seeds)")
    _legend_beside(axes)
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_catalogue_share(records: list[RunRecord], path: Path,
                         split: str = "test") -> Path | None:
    """``split``'s slot F1 on spans whose value the target's training data lacks, against the
    share of slot fills drawn from the catalogue: one line per catalogue family and total size
    (mean over the new-language tasks and seeds), upsampling to the same size dashed in the
    size's colour. Where a catalogue can help, these lines rise with the share; copies stay
    flat by construction."""
    from experiments.compare.verdict import has_focus

    metric = "slot_f1_unseen"
    cut_tasks = {task for task in {record.task for record in records}
                 if has_focus(records, task, split)}
    lines: dict[tuple[str, float], dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    copies: dict[float, list[float]] = defaultdict(list)
    for record in records:
        total = record.metrics.get("data/target_total")
        real = record.metrics.get("data/target_train")
        value = record.metrics.get(metric_key(record, split, metric))
        if total is None or not real or value is None or record.task in cut_tasks:
            continue
        size = round(total / real, 1)
        if record.family == "upsample":
            copies[size].append(value)
        elif record.catalogue_share is not None:
            family = "refill" if record.family == "refill" else "generated + copies"
            lines[(family, size)][record.catalogue_share].append(value)
    if not lines:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    shares = sorted({share for points in lines.values() for share in points})
    sizes = sorted({size for _, size in lines})
    colours = {size: f"C{index % 10}" for index, size in enumerate(sizes)}
    styles = {"refill": ("o", "-"), "generated + copies": ("s", ":")}
    for family, size in sorted(lines, key=lambda key: (key[1], key[0])):
        points = lines[(family, size)]
        xs = sorted(points)
        marker, linestyle = styles[family]
        axes.plot(xs, [100 * statistics.fmean(points[x]) for x in xs], marker=marker,
                  linestyle=linestyle, color=colours[size], label=f"{family}, {size:g}x")
    for size in sizes:
        if copies.get(size):
            axes.axhline(100 * statistics.fmean(copies[size]), linestyle="--", linewidth=1,
                         color=colours[size], label=f"upsample, {size:g}x")
    axes.set_xticks(shares)
    axes.set_xlabel("share of slot fills drawn from the catalogue")
    axes.set_ylabel(f"{split} slot F1 on unseen values (%)")
    axes.set_title(f"{split} slot F1 on values the target data lacks\n(mean over new-language "
                   "tasks and seeds; Nx: total size, N times the real data)")
    _legend_beside(axes)
    path = _save(figure, path)
    plt.close(figure)
    return path
