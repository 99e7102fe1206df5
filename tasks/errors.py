"""The library's exceptions. Tasks turn them into one line and a non-zero exit (see cli.py)."""


class ProdmirrorError(Exception):
    """Base class: the message is one line a user can act on."""

    exit_code = 1


class ConfigError(ProdmirrorError):
    """A configuration mistake: the message names the key."""

    exit_code = 2


class HostError(ProdmirrorError):
    """A host cannot be reached, refused us, or a command on it failed."""


class CommandError(HostError):
    """A command exited non-zero. Carries its exit code and the tail of its stderr."""

    def __init__(self, where, argv, code, stderr="", hint=None):
        self.where, self.argv, self.code, self.stderr = where, list(argv), code, stderr
        tail = last_line(stderr)
        if code == -1:
            how = "killed, or the connection was lost"
        elif code is not None and code < 0:
            import signal

            how = f"killed by {signal.Signals(-code).name if -code in signal.valid_signals() else f'signal {-code}'}"
        else:
            how = f"exit {code}"
        super().__init__(f"{where}: {argv[0]} failed ({how})" + (f": {tail}" if tail else "")
                         + (f" ({hint})" if hint else ""))


class GuardError(ProdmirrorError):
    """A safety guard refused to go on (no confirmation, lock held, drift)."""

    exit_code = 3


class BackupError(ProdmirrorError):
    """A backup is missing, invalid, or failed verification."""


# Lines that only sum up earlier ones (tar, rsync, pg_restore): the earlier line names the cause.
SUMMARIES = ("previous error", "exiting now", "errors ignored on restore")


def last_line(text):
    """Given a command's stderr, return the line that explains the failure: the last one saying
    error/fatal/denied (tools add 'detail:' and 'hint:' lines after it) that is not a summary of
    earlier ones (tar's `Exiting with failure status due to previous errors`), else the last other line."""
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    causes = [line for line in lines if not any(s in line.lower() for s in SUMMARIES)]
    telling = [line for line in causes if any(w in line.lower() for w in ("error", "fatal", "denied", "failed"))]
    return (telling or causes or lines or [""])[-1]


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal (Ctrl-C is SIGINT, `kill` is SIGTERM).

    A KeyboardInterrupt, so every cleanup that already handles Ctrl-C (abort the restore, drop the
    temporary database, release locks) handles SIGTERM the same way. `exit_code` is 128 + the signal.
    """

    def __init__(self, signum=2):
        import signal

        self.signum = signum
        self.signal = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(self.signal)
