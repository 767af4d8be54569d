"""Plotext charts for a run: loss with the best point and overfitting marked, and small series."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from workbench.sweep.control import SweepSnapshot
from workbench.train.watch import ChartData, Series

OVERLAY_COLORS = ["magenta", "cyan", "yellow", "white", "blue"]


def _points(widget: PlotextPlot) -> int:
    """Two points per character column of the plot: finer detail cannot be drawn anyway."""
    return max(40, 2 * widget.size.width)


class LossChart(PlotextPlot):
    """Train and eval loss against step; compared runs overlaid in other colours."""

    DEFAULT_CSS = """
    LossChart { height: 1fr; min-height: 8; }
    """

    def show(self, data: ChartData | None, overlays: dict[str, ChartData] | None = None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        plt.xlabel("step")
        if data is None or not (data.train_loss or data.eval_loss):
            plt.title("loss (no metrics yet)")
            self.refresh()
            return
        verdict = data.verdict
        # The shading goes first so the loss lines are drawn over it.
        if verdict.kind == "overfitting" and verdict.since_step is not None and data.eval_loss:
            # A light band from where it began to the last step, under everything else.
            top = max(data.train_loss.values + data.eval_loss.values)
            last = max(data.eval_loss.steps[-1], data.train_loss.steps[-1] if data.train_loss else 0)
            plt.plot(
                [verdict.since_step, last],
                [top, top],
                color="red",
                fillx=True,
                marker="·",
                label=f"overfitting since {verdict.since_step}",
            )
            plt.vertical_line(verdict.since_step, color="red")
        elif verdict.kind == "diverged" and verdict.since_step is not None:
            plt.vertical_line(verdict.since_step, color="red")
        n = _points(self)
        for i, (run_id, other) in enumerate((overlays or {}).items()):
            color = OVERLAY_COLORS[i % len(OVERLAY_COLORS)]
            if other.eval_loss:
                ev = other.eval_loss.thinned(n)
                plt.plot(ev.steps, ev.values, color=color, marker="braille", label=f"{run_id} eval")
            elif other.train_loss:
                tr = other.train_loss.thinned(n)
                plt.plot(tr.steps, tr.values, color=color, marker="braille", label=f"{run_id} train")
        if data.train_loss:
            train = data.train_loss.thinned(n)
            plt.plot(train.steps, train.values, color="blue+", marker="braille", label="train")
        if data.eval_loss:
            evals = data.eval_loss.thinned(n)
            plt.plot(evals.steps, evals.values, color="orange", marker="braille", label="eval")
        if data.best is not None:
            plt.scatter([data.best[0]], [data.best[1]], color="green+", marker="●", label=f"best {data.best[1]:.4f}")
        self.refresh()


class SeriesChart(PlotextPlot):
    """One small series (learning rate, tokens/s, CPU %...)."""

    DEFAULT_CSS = """
    SeriesChart { height: 1fr; min-height: 5; }
    """

    def show(
        self, title: str, series: Series | list[Series], labels: list[str] | None = None, color: str = "cyan"
    ) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        many = series if isinstance(series, list) else [series]
        colors = [color, "magenta", "yellow", "green"]
        values = []
        for i, s in enumerate(many):
            s = s.thinned(_points(self))
            if s:
                values += s.values
                plt.plot(
                    s.steps,
                    s.values,
                    marker="braille",
                    color=colors[i % len(colors)],
                    label=labels[i] if labels else None,
                )
        if values and 0 < max(abs(v) for v in values) < 0.01:  # learning rates: short tick labels
            lo, hi = min(values), max(values)
            ticks = [lo + (hi - lo) * k / 3 for k in range(4)] if hi > lo else [hi]
            plt.yticks(ticks, [f"{t:.1e}" for t in ticks])
        self.refresh()


class ObjectiveChart(PlotextPlot):
    """A sweep's objective against trial number: each complete trial, the pruned ones at their last report,
    and the best so far as a step line."""

    DEFAULT_CSS = """
    ObjectiveChart { height: 1fr; min-height: 8; }
    """

    def show(self, snapshot: SweepSnapshot | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.xlabel("trial")
        if snapshot is None or not any(t.value is not None or t.intermediate for t in snapshot.trials):
            plt.title("objective (no trial has finished yet)")
            self.refresh()
            return
        s = snapshot.summary
        plt.title(f"{s.metric} by trial ({s.direction})")
        done = [t for t in snapshot.trials if t.state == "COMPLETE" and t.value is not None]
        if done:
            plt.scatter([t.number for t in done], [t.value for t in done], color="cyan", marker="●", label="complete")
        pruned = [t for t in snapshot.trials if t.state in ("PRUNED", "pruning") and t.intermediate]
        if pruned and s.metric == "eval_loss":  # their last eval loss, on the same scale
            last = [t.intermediate[max(t.intermediate)] for t in pruned]
            plt.scatter([t.number for t in pruned], last, color="yellow", marker="x", label="pruned (last eval)")
        numbers = [t.number for t in snapshot.trials]
        ticks = sorted(set(numbers[:: max(1, len(numbers) // 10)] + numbers[-1:]))
        plt.xticks(ticks, [str(n) for n in ticks])
        if snapshot.best_so_far:
            xs = [n for n, _ in snapshot.best_so_far]
            plt.plot(xs, [v for _, v in snapshot.best_so_far], color="green+", marker="braille", label="best so far")
        self.refresh()
