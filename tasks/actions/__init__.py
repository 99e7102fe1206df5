"""The flows behind the tasks, one module per namespace and named like it (sync, backup, mirror, hotfix,
deploy), each run inside the one run context of run.py. Every function takes a Project and plain
options, so tests call them directly; the tasks only parse options and print."""
