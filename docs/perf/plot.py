"""Turns docs/perf/scale-*.csv (`cargo bench --bench scale`) and fleet-*.csv (`just bench-fleet`) into PNG charts."""

import csv
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).parent


def rows(name):
    with open(HERE / name, newline="") as f:
        return list(csv.DictReader(f))


def chart(path, title, xlabel, ylabel, series, logx=False, legend="best"):
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for label, xs, ys in series:
        ax.plot(xs, ys, marker="o", label=label)
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.3g}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    if logx:
        ax.set_xscale("log")
    else:
        ax.set_xticks(sorted({x for _, xs, _ in series for x in xs}))
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / path)
    print("wrote", HERE / path)


locks = rows("scale-locks.csv")
series = []
for backend in sorted({r["backend"] for r in locks}):
    rs = [r for r in locks if r["backend"] == backend]
    series.append((backend, [int(r["rows"]) for r in rs], [float(r["acquire_release_us"]) for r in rs]))
chart("scale-locks.png", "Lock acquire + release vs rows in `locks`", "rows in the locks table", "median µs", series, logx=True)

steps = rows("scale-steps.csv")
chart(
    "scale-steps.png",
    "Full lifecycle vs number of steps (SQLite)",
    "steps",
    "median ms",
    [("lifecycle", [int(r["steps"]) for r in steps], [float(r["lifecycle_ms"]) for r in steps])],
)

apply = rows("scale-apply.csv")
chart(
    "scale-apply.png",
    "Apply vs bytes changed (one file)",
    "MiB",
    "median ms",
    [("apply", [int(r["mib"]) for r in apply], [float(r["apply_ms"]) for r in apply])],
)

# The fleet burn-down (`just bench-fleet`): plans/s against the number of
# workers, one line per backend and number of plans.
fleet = [r for name in ("fleet-sqlite.csv", "fleet-postgres.csv") if (HERE / name).exists() for r in rows(name)]
burn = [r for r in fleet if r["figure"] in ("burn_down", "burn_down_processes")]
if burn:
    series = []
    for backend, figure, plans in sorted({(r["backend"], r["figure"], int(r["plans"])) for r in burn}):
        rs = sorted(
            (r for r in burn if (r["backend"], r["figure"], int(r["plans"])) == (backend, figure, plans)),
            key=lambda r: int(r["workers"]),
        )
        how = "worker processes" if figure == "burn_down_processes" else "in-process workers"
        series.append((f"{backend}, {how}, {plans} plans", [int(r["workers"]) for r in rs], [float(r["value"]) for r in rs]))
    chart("fleet.png", "Fleet burn-down: noop plans, submit → applied", "workers", "plans/s", series, legend="lower center")
