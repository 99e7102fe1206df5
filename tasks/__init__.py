"""prodmirror: the task collections (mirror, db, hotfix) and the library behind them.

tasks.py at the project root is what invoke loads; it makes itself this package (see its comment),
so `tasks.db`, `tasks.config`… resolve to the files in this folder either way.
"""
