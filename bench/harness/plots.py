"""PNG plots of a scenario's results (latency distributions; memory against open streams).
Needs matplotlib; without it the plots are skipped with a note."""

import os


def _pyplot():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        return plt
    except ImportError:
        print("bench: matplotlib not installed; no plots")
        return None


def _curve(ax, summary, label):
    qs = [q * 100 for q, _ in summary["curve"]]
    values = [v for _, v in summary["curve"]]
    ax.plot(qs, values, marker=".", label=label)


def draw(result, out):
    plt = _pyplot()
    if plt is None:
        return
    name = result["scenario"]
    if name == "json_path" and result["rates"]:
        row = min(result["rates"], key=lambda r: abs(r["fraction"] - 0.5))
        fig, ax = plt.subplots(figsize=(7, 4))
        for contender, r in row["results"].items():
            _curve(ax, r["latency"], contender)
        ax.set(title=f"JSON passthrough latency at {row['rate']} req/s", xlabel="percentile",
               ylabel="ms", yscale="log")
        ax.legend()
        fig.savefig(os.path.join(out, "json_path_latency.png"), dpi=100, bbox_inches="tight")
        plt.close(fig)
    if name in ("chat_streams", "openai_streams") and result["rounds"]:
        for count, by_name in result["rounds"].items():
            fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
            for contender, r in by_name.items():
                _curve(a1, r["time_to_first_token"], contender)
                _curve(a2, r["gap_between_tokens"], contender)
            a1.set(title=f"time to first token, {count} streams", xlabel="percentile",
                   ylabel="ms", yscale="log")
            a2.set(title=f"gap between tokens, {count} streams", xlabel="percentile",
                   ylabel="ms", yscale="log")
            a1.legend()
            fig.savefig(os.path.join(out, f"{name}_{count}_latency.png"), dpi=100,
                        bbox_inches="tight")
            plt.close(fig)
    if result.get("memory"):
        fig, ax = plt.subplots(figsize=(7, 4))
        for contender, points in result["memory"].items():
            xs = [p["streams"] for p in points if p["rss_open"] is not None]
            ys = [p["rss_open"] / 2**20 for p in points if p["rss_open"] is not None]
            ax.plot(xs, ys, marker="o", label=contender)
        ax.set(title="resident memory against open streams", xlabel="open streams",
               ylabel="RSS MiB", xscale="log")
        ax.legend()
        fig.savefig(os.path.join(out, f"{name}_memory.png"), dpi=100, bbox_inches="tight")
        plt.close(fig)
    if name == "fanout" and result.get("rounds"):
        fig, ax = plt.subplots(figsize=(7, 4))
        for count, r in result["rounds"].items():
            _curve(ax, r["publish_to_browser"], f"{count} streams")
        ax.set(title="publish-to-browser latency", xlabel="percentile", ylabel="ms",
               yscale="log")
        ax.legend()
        fig.savefig(os.path.join(out, "fanout_latency.png"), dpi=100, bbox_inches="tight")
        plt.close(fig)
