"""The report's figures, drawn with matplotlib as inline SVG (no files, no network).

  keep_rates       observed keep rate minus 1-p, with its confidence interval, for each p tried
  trajectories     running mean and variance over training steps against the reference
  error_ratios     the distribution of |error| / tolerance per clause
Each returns an SVG string, or None when the report holds nothing to draw.
"""
from __future__ import annotations

import io

KEEP_RATE_CLAUSES = ("DO-TRAIN-02", "D2-TRAIN-03")


def _svg(fig) -> str:
    import matplotlib.pyplot as plt
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG is inline


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "dropnorm"  # stable ids: the same report renders the same SVG
    import matplotlib.pyplot as plt
    return plt


def keep_rates(report: dict) -> str | None:
    series = {e["id"]: [s for s in e["statistics"] if s["kind"] == "binomial"]
              for e in report["clauses"] if e["id"] in KEEP_RATE_CLAUSES}
    if not any(series.values()):
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    for (cid, points), marker in zip(series.items(), "os"):
        if not points:
            continue
        p = [1 - s["p0"] for s in points]
        d = [s["rate"] - s["p0"] for s in points]
        err = [[s["rate"] - s["ci"][0] for s in points], [s["ci"][1] - s["rate"] for s in points]]
        ax.errorbar(p, d, yerr=err, fmt=marker, ms=4, capsize=2, label=f"{cid} (CI at 1 - alpha)")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("p (drop probability)")
    ax.set_ylabel("observed keep rate - (1 - p)")
    ax.set_title("Keep rate: an interval that excludes 0 is a rejection")
    ax.legend(fontsize=8)
    return _svg(fig)


def trajectories(report: dict, limit: int = 6) -> str | None:
    runs = [t for e in report["clauses"] for t in e["trajectories"]]
    runs = sorted(runs, key=len, reverse=True)[:limit]
    if not runs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for i, run in enumerate(runs):
        steps = [r[0] for r in run]
        for ax, got, exp in ((axes[0], 1, 2), (axes[1], 3, 4)):
            ax.plot(steps, [r[exp] for r in run], "-", color=f"C{i}", lw=1)
            ax.plot(steps, [r[got] for r in run], "x", color=f"C{i}", ms=7)
    for ax, what in zip(axes, ("running_mean[0]", "running_var[0]")):
        ax.set_xlabel("training step")
        ax.set_title(f"{what}: x implementation, - reference", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return _svg(fig)


def error_ratios(report: dict) -> str | None:
    rows = [(e["id"], e["tolerance"]["ratios"]) for e in report["clauses"] if e["tolerance"]]
    rows = [(cid, [max(r, 1e-6) for r in ratios]) for cid, ratios in rows if ratios]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    ax.boxplot([r for _, r in rows], orientation="horizontal", tick_labels=[c for c, _ in rows],
               showfliers=True, flierprops={"markersize": 2})
    ax.axvline(1.0, color="red", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("largest |error| / tolerance per check (red: the tolerance; values below 1e-6 drawn at 1e-6)")
    ax.tick_params(axis="y", labelsize=7)
    return _svg(fig)


def all_figures(report: dict) -> list[tuple[str, str]]:
    """(title, svg) for each figure there is something to draw for; [] without matplotlib. matplotlib is
    imported by the first figure that has data (a second of CPU an audit without figures does not pay)."""
    out = []
    for title, make in (("Keep rate against 1 - p", keep_rates),
                        ("Running statistics over training steps", trajectories),
                        ("Errors against their tolerance", error_ratios)):
        try:
            svg = make(report)
        except ImportError:  # matplotlib is not installed: the report has no figures
            return []
        if svg:
            out.append((title, svg))
    return out
