"""Plots for the leaderboard and the run report (matplotlib, Agg, PNG).

Each `*_figure` function builds one figure from plain data; `save_png` writes it atomically and
`png_bytes` gives the bytes for embedding in the HTML report. Figures close themselves once rendered.
"""

from __future__ import annotations

import functools
import io
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..suites import SUITES, default_suite  # noqa: E402


def metric_label(suite: str, default: str = "") -> str:
    """The short label of a suite's metric (Suite.paper.label; the full name is Suite.metric)."""
    return SUITES[suite].paper.label if suite in SUITES else default


DPI = 120
CONDITION_COLOURS = {"instructed": "#1f77b4", "uninstructed": "#bbbbbb"}


# ------------------------------------------------------------------------------------------ output
def png_bytes(fig) -> bytes:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)
    return buf.getvalue()


def save_png(fig, path: Path) -> Path:
    """Write the figure to `path` atomically (no half-written PNG is ever left)."""
    from ..data.io import atomic_write_bytes

    atomic_write_bytes(Path(path), png_bytes(fig))
    return Path(path)


def _suite_label(s: str, width: int = 14) -> str:
    metric = metric_label(s)
    return "\n".join(textwrap.wrap(s.replace("_", " "), width) + ([f"({metric})"] if metric else []))


def _finite(v) -> bool:
    return v is not None and v is not pd.NA and isinstance(v, (int, float, np.floating)) and math.isfinite(v)


def _empty_figure(title: str, message: str):
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.axis("off")
    ax.set_title(title, fontsize=12, fontweight="bold")
    ax.text(0.5, 0.45, "\n".join(textwrap.wrap(message, 80)), ha="center", va="center", fontsize=10, color="#555")
    return fig


# ------------------------------------------------------------------------------------------ radar
def tie_groups(n: int, tied: list[tuple[int, int]]) -> list[int]:
    """Group labels for n rows from the pairs the paired test could not tell apart (connected components:
    a = b and b = c put a, b and c in one group; a pair never tested counts as different)."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in tied:
        parent[find(a)] = find(b)
    return [find(i) for i in range(n)]


def _group_means(values: np.ndarray, groups: list[int]) -> np.ndarray:
    """Each finite value replaced by the mean of the finite values of its tie group."""
    out = values.astype(float).copy()
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g and np.isfinite(values[i])]
        if len(idx) > 1:
            out[idx] = float(np.mean(values[idx]))
    return out


def board_ties(df: pd.DataFrame, prefix: str) -> list[tuple[int, int]]:
    """Adjacent board rows (i, i + 1) marked tied in `<prefix>__tied_with_next` (the paired tie test)."""
    col = f"{prefix}__tied_with_next"
    if col not in df:
        return []
    return [(i, i + 1) for i, v in enumerate(df[col].tolist()[:-1]) if _finite(v) and v == 1]


TIED_NOTE = "rows the paired test cannot tell apart (=) drawn alike, at their mean"


def radar_figure(gains: dict[str, pd.DataFrame], ties: dict[str, dict[str, list[tuple[int, int]]]] | None = None):
    """One polar panel per normalisation ({title: DataFrame methods x suites of values in [0, 1], or in
    [-1, 1] for the signed absolute gains}); one polygon per method. The paper's radar is the
    board-relative panel. A panel with a negative value (switching the wrong way) has its centre at -1
    and a dashed circle at 0. `ties` ({title: {suite: [(row, row), ...]}}, rows in the DataFrame's order):
    on that spoke the tied methods' vertices are drawn at their group's mean, so a difference the paired
    test denies is not drawn."""
    ties = ties or {}
    panels = {t: g for t, g in gains.items() if g is not None and g.shape[1] > 0 and g.notna().any().any()}
    if not panels:
        return _empty_figure(
            "Normalised instruction gains", "No suite has a gain Δ for every method on the board (both conditions must be run)."
        )
    fig, axes = plt.subplots(1, len(panels), figsize=(6.2 * len(panels), 6.4), subplot_kw={"polar": True}, squeeze=False)
    cmap = plt.get_cmap("tab10")
    handles = None
    for ax, (title, g) in zip(axes[0], panels.items()):
        suites = list(g.columns)
        angles = np.linspace(0, 2 * np.pi, len(suites), endpoint=False).tolist()
        drawn = g.to_numpy(dtype=float).copy()
        panel_ties = ties.get(title) or {}
        for j, s in enumerate(suites):
            if panel_ties.get(s):
                drawn[:, j] = _group_means(drawn[:, j], tie_groups(len(g), panel_ties[s]))
        for i, method in enumerate(g.index):
            vals = [max(-1.0, float(v)) if _finite(v) else 0.0 for v in drawn[i].tolist()]
            color = cmap(i % 10)
            ax.plot(angles + angles[:1], vals + vals[:1], color=color, linewidth=2, marker="o", label=str(method))
            ax.fill(angles + angles[:1], vals + vals[:1], color=color, alpha=0.12)
        ax.set_xticks(angles)
        ax.set_xticklabels([])
        for ang, s in zip(angles, suites):
            # Labels outside the circle, anchored away from it so they never cross the plot.
            c, sn = math.cos(ang), math.sin(ang)
            ax.text(
                ang,
                1.13,
                _suite_label(s),
                fontsize=9,
                va="center" if abs(sn) < 0.3 else ("bottom" if sn > 0 else "top"),
                ha="center" if abs(c) < 0.3 else ("left" if c > 0 else "right"),
            )
        negative = bool((g.to_numpy(dtype=float) < 0).any())
        if negative:
            ax.set_ylim(-1.0, 1.0)
            ax.set_yticks([-0.5, 0.0, 0.5, 1.0])
            ax.set_yticklabels(["-0.5", "0", "0.5", "1"], fontsize=7, color="#666")
            ring = np.linspace(0, 2 * np.pi, 181)
            ax.plot(ring, np.zeros_like(ring), color="#444", linewidth=0.8, linestyle="--")
        else:
            ax.set_ylim(0, 1.0)
            ax.set_yticks([0.25, 0.5, 0.75, 1.0])
            ax.set_yticklabels(["0.25", "0.5", "0.75", "1"], fontsize=7, color="#666")
        ax.set_rlabel_position(180.0 / max(len(suites), 1))  # between the first two spokes
        ax.set_title(title + ("\n" + TIED_NOTE if any(panel_ties.values()) else ""), fontsize=11, pad=44)
        handles = ax.get_legend_handles_labels()
    fig.suptitle("Normalised instruction gain Δ per suite (one polygon per method)", fontsize=13, fontweight="bold")
    fig.legend(
        *handles, loc="lower center", ncol=min(4, len(handles[1])), frameon=False, bbox_to_anchor=(0.5, -0.02), title="method"
    )
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


# ------------------------------------------------------------------------------------------ heatmap
def _column_colours(values: np.ndarray, groups: list[list[int]] | None = None) -> np.ndarray:
    """Min-max each column over the methods (0.5 where a column has one value or all equal); with `groups`
    (per column, a tie-group label per row) every row of a group gets the colour of the group's mean."""
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        col = values[:, j]
        ok = np.isfinite(col)
        if not ok.any():
            continue
        lo, hi = np.nanmin(col), np.nanmax(col)
        if groups is not None:
            col = _group_means(col, groups[j])
        out[ok, j] = 0.5 if hi - lo < 1e-12 else (col[ok] - lo) / (hi - lo)
    return out


def _overlapping(vals: np.ndarray, halves: np.ndarray) -> list[tuple[int, int]]:
    """Row pairs whose 95% CIs overlap (no paired test exists for the instructed score itself)."""
    n = len(vals)
    ok = np.isfinite(vals) & np.isfinite(halves)
    return [
        (a, b) for a in range(n) for b in range(a + 1, n) if ok[a] and ok[b] and abs(vals[a] - vals[b]) <= halves[a] + halves[b]
    ]


def heatmap_panels(df: pd.DataFrame) -> list[dict]:
    """The heatmap's panels: per suite the instructed score (rows with overlapping CIs coloured alike) and
    the gain Δ (rows the paired tie test marks '=' coloured alike), and per switching axis the held-out
    likelihood margin (likewise), when the board has them."""
    from .leaderboard import switching_axes

    suites = [s for s in SUITES if f"{s}__paper" in df and (df[f"{s}__paper"].notna().any() or df[f"{s}__delta"].notna().any())]
    axes = [a for a in switching_axes() if f"likelihood__{a}__margin" in df and df[f"likelihood__{a}__margin"].notna().any()]
    n = len(df)

    def arr(cols):
        return np.array([[df[c].iloc[i] for c in cols] for i in range(n)], dtype=float)

    panels = []
    if suites:
        vals, halves = arr([f"{s}__paper" for s in suites]), arr([f"{s}__paper_ci_half" for s in suites])
        panels.append(
            {
                "title": "Instructed score (paper-compatible metric); rows whose 95% CIs overlap share a colour",
                "labels": [_suite_label(s) for s in suites],
                "xlabel": "suite (headline metric)",
                "values": vals,
                "halves": halves,
                "groups": [tie_groups(n, _overlapping(vals[:, j], halves[:, j])) for j in range(len(suites))],
            }
        )
        panels.append(
            {
                "title": "Gain Δ = instructed − uninstructed headline (signed; litmus: absolute AQI);\n"
                "rows the paired test marks '=' share a colour",
                "labels": [_suite_label(s) for s in suites],
                "xlabel": "suite (headline metric)",
                "values": arr([f"{s}__delta" for s in suites]),
                "halves": arr([f"{s}__delta_ci_half" for s in suites]),
                "groups": [tie_groups(n, board_ties(df, s)) for s in suites],
            }
        )
    if axes:
        panels.append(
            {
                "title": "Held-out likelihood margin per switching axis (nats, no generation);\n"
                "rows the paired test marks '=' share a colour",
                "labels": [f"{a}\n({switching_axes()[a][0].replace('_', ' ')})" for a in axes],
                "xlabel": "switching axis (its suite)",
                "values": arr([f"likelihood__{a}__margin" for a in axes]),
                "halves": arr([f"likelihood__{a}__margin_ci_half" for a in axes]),
                "groups": [tie_groups(n, board_ties(df, f"likelihood__{a}")) for a in axes],
            }
        )
    return panels


def heatmap_figure(df: pd.DataFrame):
    """Methods x columns, one panel each for the instructed score, the gain Δ and (when run) the likelihood
    margin per axis, each cell annotated 'value ± CI half-width'. Colour is relative within a column (the
    suites' scales differ): the lowest method on this board to the highest, and rows the statistics cannot
    tell apart share their group's colour."""
    panels = [] if df.empty else heatmap_panels(df)
    if not panels:
        return _empty_figure("Scores", "No scored suite on the board.")
    methods = df["method"].astype(str).tolist()
    width = max(6.5, 1.6 * max(len(p["labels"]) for p in panels) + 3.0)
    height = max(3.2, 0.6 * len(methods) + 2.2)
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, len(panels) * height), squeeze=False)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    im = None
    for ax, p in zip(axes[:, 0], panels):
        vals, halves = p["values"], p["halves"]
        colours = _column_colours(vals, p["groups"])
        im = ax.imshow(np.ma.masked_invalid(colours), cmap=cmap, vmin=0, vmax=1, aspect="auto")
        for i in range(len(methods)):
            for j in range(vals.shape[1]):
                v, h = vals[i, j], halves[i, j]
                if not np.isfinite(v):
                    ax.text(j, i, "n/a", ha="center", va="center", fontsize=9, color="#777")
                    continue
                label = f"{v:.3g}" + (f"\n±{h:.2g}" if np.isfinite(h) else "\n(no CI)")
                c = colours[i, j]
                ax.text(
                    j, i, label, ha="center", va="center", fontsize=9, color="white" if np.isfinite(c) and c < 0.6 else "black"
                )
        ax.set_xticks(range(vals.shape[1]))
        ax.set_xticklabels(p["labels"], rotation=30, ha="right", rotation_mode="anchor", fontsize=9)
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods, fontsize=9)
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel("method")
        ax.set_title(p["title"], fontsize=10, loc="left")
    fig.suptitle(
        "Scores per suite (cell: value ± 95% CI half-width)\ncolour: relative to the methods on this board, per column",
        fontsize=12,
        fontweight="bold",
    )
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.92, 0.25, 0.018, 0.5))
    cb = fig.colorbar(im, cax=cax)
    cb.set_label("relative within column\n(0 = lowest on this board, 1 = highest;\ntied rows: their group's mean)", fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------ bars
@functools.lru_cache(maxsize=None)
def _type_order(suite: str) -> tuple[str, ...]:
    """The suite's instruction types in their declared order (empty for a suite unknown here)."""
    if suite not in SUITES:
        return ()
    return tuple(t.name for t in SUITES[suite].instructions().types)


def _pick_metric(suite: str, per_types: list[dict]) -> str | None:
    names = set()
    for pt in per_types:
        for scores in (pt or {}).values():
            names |= {n for n, sc in (scores or {}).items() if isinstance(sc, dict) and sc.get("value") is not None}
    # the suite's preferred per-type signals first (Suite.paper.plot_signals), then any present
    for pref in SUITES[suite].paper.plot_signals if suite in SUITES else ():
        if pref in names:
            return pref
    return sorted(names)[0] if names else None


def per_type_figure(
    suite: str, series: list[tuple[str, dict]], metric: str | None = None, types: list[str] | None = None, note: str = ""
):
    """Grouped bars: x = instruction type, one bar per series (a method, or a condition), error bars = CI.

    `series` is [(label, per_instruction_type dict {type: {metric: Score}})]."""
    metric = metric or _pick_metric(suite, [pt for _, pt in series])
    if metric is None:
        return _empty_figure(f"{suite}: per instruction type", "No per-instruction-type metric was scored.")
    if types is None:
        types = list(_type_order(suite))
        seen = {t for _, pt in series for t in (pt or {})}
        types = [t for t in types if t in seen] + sorted(seen - set(types))
    n = len(series)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(6.5, 0.75 * len(types) * max(1, n / 2) + 2.5), 4.6))
    cmap = plt.get_cmap("tab10")
    lows = []
    for k, (label, pt) in enumerate(series):
        vals, err_lo, err_hi = [], [], []
        for t in types:
            sc = ((pt or {}).get(t) or {}).get(metric) or {}
            v = sc.get("value")
            v = float(v) if v is not None else np.nan
            lo, hi = sc.get("ci_low"), sc.get("ci_high")
            vals.append(v)
            err_lo.append(v - lo if lo is not None and np.isfinite(v) else 0.0)
            err_hi.append(hi - v if hi is not None and np.isfinite(v) else 0.0)
            if np.isfinite(v):
                lows.append(lo if lo is not None else v)
        x = np.arange(len(types)) + (k - (n - 1) / 2) * width
        colour = CONDITION_COLOURS.get(label, cmap(k % 10))
        ax.bar(
            x,
            vals,
            width * 0.92,
            yerr=[err_lo, err_hi],
            capsize=3,
            color=colour,
            label=label,
            error_kw={"elinewidth": 1, "ecolor": "#333"},
        )
    ax.set_xticks(np.arange(len(types)))
    ax.set_xticklabels([t.replace("_", " ") for t in types], rotation=35, ha="right", rotation_mode="anchor")
    ylabel = metric.replace("_", " ")
    vals_all = [v for v in lows if v is not None and np.isfinite(v)]
    top = ax.get_ylim()[1]
    if vals_all and min(vals_all) > 0 and (top - min(vals_all)) < 0.35 * top:
        # Values sit in a narrow band far from zero (fidelity is ~0.55 for every model): zoom in.
        lo = min(vals_all)
        ax.set_ylim(max(0.0, lo - 0.15 * (top - lo)), top)
        ylabel += " (y axis zoomed)"
    ax.set_ylabel(ylabel)
    ax.set_xlabel("instruction type")
    ax.set_title(f"{suite}: {metric.replace('_', ' ')} per instruction type{note} (error bars: 95% CI)", fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if n > 1 or series[0][0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def conditions_figure(metrics: dict):
    """One small panel per suite: the headline score instructed vs uninstructed, with CIs and the Δ."""
    from .leaderboard import suite_order

    suites = suite_order(metrics.get("suites", {}))
    if not suites:
        return _empty_figure("Instructed vs uninstructed", "No suite scored.")
    ncol = min(5, len(suites))
    nrow = math.ceil(len(suites) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.9 * ncol, 3.5 * nrow), squeeze=False)
    colours = CONDITION_COLOURS
    for ax, s in zip(axes.flat, suites):
        sd = metrics["suites"][s]
        conds = [c for c in ("instructed", "uninstructed") if c in sd.get("conditions", {})]
        for i, c in enumerate(conds):
            sc = sd["conditions"][c]["paper"]
            v = sc.get("value")
            if v is None:
                ax.text(i, 0, "unscored", ha="center", va="bottom", fontsize=8, rotation=90, color="#777")
                continue
            lo, hi = sc.get("ci_low"), sc.get("ci_high")
            yerr = [[v - lo], [hi - v]] if lo is not None and hi is not None else None
            ax.bar(i, v, 0.6, yerr=yerr, capsize=4, color=colours[c])
            # The value, written at the bar's base, so a zero-height bar still reads.
            ax.annotate(
                f"{v:.3g}",
                (i, 0),
                xytext=(0, 3 if v >= 0 else -3),
                textcoords="offset points",
                ha="center",
                va="bottom" if v >= 0 else "top",
                fontsize=8,
                color="#222",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
            )
        ax.set_xticks(range(len(conds)))
        ax.set_xticklabels(conds, fontsize=8)
        ax.axhline(0, color="#444", linewidth=0.6)
        d = (sd.get("delta") or {}).get("value")
        dp = (sd.get("delta_paper") or {}).get("value")
        title = f"{s.replace('_', ' ')}\nΔ = {d:.3g}" if d is not None else f"{s.replace('_', ' ')}\nΔ n/a"
        if d is not None and dp is not None and abs(dp - d) > 1e-12:
            title += f" (paper Δ {dp:.3g})"
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(metric_label(s, sd.get("metric", "score")), fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    for ax in list(axes.flat)[len(suites) :]:
        ax.axis("off")
    fig.suptitle("Headline score by condition (error bars: 95% CI)", fontsize=12, fontweight="bold")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ switch matrix
def switch_matrix_figure(panels: list[tuple[str, dict]], title: str):
    """One heatmap per panel ([(panel title, switch_matrix dict)], scoring/diagnostics.py): rows = the
    instruction given, columns = the one recovered from the response, cell = P(recovered | given) (rows
    sum to 1; grey 'n/a' rows had no prediction; a panel without any says so). Collapsed pairs are listed
    under each panel."""
    scored = [sm for _, sm in panels if sm and any(r is not None for r in sm.get("matrix") or [])]
    if not scored:
        return _empty_figure(
            title, "No switch matrix was scored (identifiability needs at least 2 instruction types and 4 prompts)."
        )
    k = max(len(sm["types"]) for sm in scored)
    side = max(3.2, 0.55 * k + 1.8)
    fig, axes = plt.subplots(1, len(panels), figsize=(side * len(panels) + 1.0, side + 1.0), squeeze=False)
    cmap = plt.get_cmap("viridis").with_extremes(bad="#eeeeee")
    im = None
    for ax, (name, sm) in zip(axes[0], panels):
        if not (sm and any(r is not None for r in sm.get("matrix") or [])):
            ax.axis("off")
            ax.set_title(name, fontsize=10, loc="left")
            ax.text(0.5, 0.5, "not scored", ha="center", va="center", fontsize=10, color="#777")
            continue
        types = sm["types"]
        vals = np.array([[np.nan] * len(types) if row is None else row for row in sm["matrix"]], dtype=float)
        im = ax.imshow(np.ma.masked_invalid(vals), cmap=cmap, vmin=0, vmax=1, aspect="equal")
        for i in range(len(types)):
            for j in range(len(types)):
                v = vals[i, j]
                text, colour = ("n/a", "#777") if not np.isfinite(v) else (f"{v:.2f}", "white" if v < 0.6 else "black")
                ax.text(j, i, text, ha="center", va="center", fontsize=8 if k > 6 else 9, color=colour)
        labels = [t.replace("_", " ") for t in types]
        ax.set_xticks(range(len(types)))
        ax.set_xticklabels(labels, rotation=40, ha="right", rotation_mode="anchor", fontsize=9)
        ax.set_yticks(range(len(types)))
        ax.set_yticklabels(labels, fontsize=9)
        ax.set_xlabel("instruction recovered from the response")
        ax.set_ylabel("instruction given")
        collapsed = ", ".join(f"{a}~{b} ({c['cross']:.2f})" for c in sm.get("collapsed") or [] for a, b in [c["pair"]])
        ax.set_title(name + "\n" + "\n".join(textwrap.wrap("collapsed: " + (collapsed or "none"), 48)), fontsize=10, loc="left")
    fig.suptitle(title, fontsize=13, fontweight="bold")
    fig.tight_layout(rect=(0, 0, 0.92, 0.95))
    cax = fig.add_axes((0.935, 0.25, 0.015, 0.5))
    fig.colorbar(im, cax=cax).set_label("P(recovered | given)", fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------ the board
def board_plots(df: pd.DataFrame, out: Path, methods=None) -> list[Path]:
    """radar.png, heatmap.png and <suite>_per_type.png of the first registered suite the methods were scored
    on (ECLIPTICA when present; this one needs the methods) under `out`."""
    from .leaderboard import normalised_gains

    out = Path(out)
    written = [
        save_png(radar_figure(normalised_gains(df), radar_ties(df)), out / "radar.png"),
        save_png(heatmap_figure(df), out / "heatmap.png"),
    ]
    if methods:
        order = {m: i for i, m in enumerate(df["method"])}
        main = next((s for s in SUITES if any(m.cond(s, "instructed") for m in methods)), default_suite().name)
        series = [
            (m.name, (m.cond(main, "instructed") or {}).get("per_instruction_type") or {})
            for m in sorted(methods, key=lambda m: order.get(m.name, 1 << 30))
        ]
        written.append(save_png(per_type_figure(main, series, note=", instructed"), out / f"{main}_per_type.png"))
        written += board_switch_matrices(methods, out)
    return written


def radar_ties(df: pd.DataFrame) -> dict[str, dict[str, list[tuple[int, int]]]]:
    """The paired tie test's '=' marks per radar panel and suite. The test is on the signed Δ, which the
    absolute panel draws; the relative panel draws the paper-compatible Δ, so it takes a suite's ties only
    where the two Deltas are the same numbers on this board."""
    from .leaderboard import ABS_TITLE, REL_TITLE, _differs

    ties = {s: board_ties(df, s) for s in SUITES if f"{s}__tied_with_next" in df}
    return {ABS_TITLE: ties, REL_TITLE: {s: t for s, t in ties.items() if not _differs(df, s)}}


def board_switch_matrices(methods, out: Path) -> list[Path]:
    """switch_matrix_<suite>.png: one heatmap per method (instructed condition), for each suite that has one."""
    written = []
    for suite in SUITES:
        panels = [(m.name, (m.cond(suite, "instructed") or {}).get("switch_matrix")) for m in methods]
        if any(sm and any(r is not None for r in sm.get("matrix") or []) for _, sm in panels):
            fig = switch_matrix_figure(panels, f"{suite}: switch matrix per method (instructed)")
            written.append(save_png(fig, Path(out) / f"switch_matrix_{suite}.png"))
    return written
