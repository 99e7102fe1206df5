"""Run a few independent steps at once (production's over SSH, local's here): each in its own thread,
results in order; an exception is raised once all have ended, the first step's first (what a
sequential run would have raised)."""

import threading


def together(*steps):
    """Given callables, run them concurrently; return their results in order, or raise the exception of
    the first one (in argument order) that failed, once every one has ended."""
    results, errors = [None] * len(steps), [None] * len(steps)

    def run(i, step):
        try:
            results[i] = step()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors[i] = exc

    threads = [threading.Thread(target=run, args=(i, step), daemon=True) for i, step in enumerate(steps[1:], 1)]
    for thread in threads:
        thread.start()
    run(0, steps[0])  # the first in this thread: a signal's exception (Interrupted) lands here
    for thread in threads:
        thread.join()
    for exc in errors:
        if exc is not None:
            raise exc
    return results
