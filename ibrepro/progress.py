"""Progress displays of the command line: one line per cell of a cluster run, and the cells
and epochs of a local training run with loss and accuracy."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class CellsProgress:
    """One progress line per cell, fed by workers' reports (cluster runs)."""

    def __init__(self, console: Console, enabled: bool):
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled,
        )
        self.lines: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def report(self, label: str, message: dict) -> None:
        """A worker's snapshot report for cell `label`."""
        if label not in self.lines:
            self.lines[label] = self.progress.add_task(label, total=message["epochs"], info="")
        self.progress.update(self.lines[label], completed=message["epoch"],
                             info=f"loss {message['train_loss']:.3f} test acc {message['test_acc']:.3f}")


class TrainProgress:
    """A rich progress display: cells, epochs of the current cell, loss and accuracy."""

    def __init__(self, console: Console, n_cells: int, epochs: int, enabled: bool):
        self.progress = Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}", markup=False), TimeElapsedColumn(), TimeRemainingColumn(),
            console=console, disable=not enabled,
        )
        self.cells = self.progress.add_task("cells", total=n_cells, info="")
        self.epochs = self.progress.add_task("epochs", total=epochs, info="")

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def cell(self, index: int, total: int, name: str) -> None:
        self.progress.update(self.cells, completed=index, info=name)
        self.progress.reset(self.epochs)

    def snapshot(self, snap) -> None:
        self.progress.update(
            self.epochs, completed=snap.epoch, total=snap.epochs,
            info=f"loss {snap.train_loss:.3f} train acc {snap.train_acc:.3f} test acc {snap.test_acc:.3f}")
        if snap.epoch == snap.epochs:
            self.progress.advance(self.cells)
