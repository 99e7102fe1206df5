"""What the user sees: plan previews, progress of long transfers, tables. Rich on a terminal, plain lines otherwise."""

import sys
import time


def is_terminal(stream=None):
    stream = stream or sys.stderr
    return hasattr(stream, "isatty") and stream.isatty()


def say(message):
    """Print one progress/status line to stderr (stdout stays for results such as tables)."""
    print(message, file=sys.stderr, flush=True)


def human_bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def print_plan(title, steps, dry_run=False):
    """Given a title and a list of step lines, print the plan (marked as a dry run when it is one)."""
    say(f"{title}{' (dry run; nothing will be changed)' if dry_run else ''}:")
    for i, step in enumerate(steps, 1):
        say(f"  {i}. {step}")


class Progress:
    """Bytes moved and rate for one transfer: a live bar on a terminal, a line every 10 s and at the end otherwise."""

    def __init__(self, label, total=None):
        self.label, self.total, self.done = label, total, 0
        self.started = self._last = time.monotonic()
        self._live = None
        if is_terminal():
            from rich.progress import (BarColumn, DownloadColumn, Progress as Bar, TextColumn,
                                       TimeElapsedColumn, TransferSpeedColumn)

            self._live = Bar(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                             TransferSpeedColumn(), TimeElapsedColumn(), transient=True)
            self._live.start()
            self._task = self._live.add_task(label, total=total)

    def advance(self, n):
        self.done += n
        if self._live:
            self._live.update(self._task, advance=n)
        elif time.monotonic() - self._last >= 10:
            self._last = time.monotonic()
            say(f"{self.label}: {human_bytes(self.done)} so far")

    def finish(self, ok=True):
        if self._live:
            self._live.stop()
        seconds = max(time.monotonic() - self.started, 1e-6)
        if ok:
            say(f"{self.label}: {human_bytes(self.done)} in {seconds:.1f} s ({human_bytes(self.done / seconds)}/s)")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.finish(ok=exc_type is None)
        return False


def print_table(title, columns, rows):
    """Given column names and rows of strings, print a table to stdout (rich renders plain text off a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table()
    for name in columns:
        table.add_column(name)
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    console = Console(soft_wrap=False, width=None if is_terminal(sys.stdout) else 160)
    console.print(title, markup=False, highlight=False)
    console.print(table)
