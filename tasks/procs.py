"""Started commands whose bytes prodmirror moves: on this machine (subprocess) or on an SSH host (a
paramiko channel). Both are a source (read) and a sink (write) for transfer.py, with the same
check() (wait; raise CommandError naming the tool) and kill() (stop now).
"""

import os
import socket
import subprocess
import threading
from dataclasses import dataclass

from .errors import CommandError, HostError
from .transfer import CHUNK, End


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


class Proc(End):
    """A started command: read(n) from its stdout, write()/close_stdin() its stdin, wait() for its code."""

    def __init__(self, where, argv):
        self.where, self.argv = where, list(argv)
        self._stderr = bytearray()

    def _keep_stderr(self, data):
        self._stderr += data
        del self._stderr[:-65536]  # the tail is what explains a failure; never grow without bound

    @property
    def stderr(self):
        return bytes(self._stderr).decode("utf-8", "replace")

    hints = ()  # (text in stderr, what it means): set by whoever knows the tool (engines)

    def check(self, code=None):
        """Wait for the command; raise CommandError if it did not exit 0 (with the hint its stderr matches)."""
        code = self.wait() if code is None else code
        if code != 0:
            stderr = self.stderr
            hint = next((meaning for text, meaning in self.hints if text in stderr), None)
            raise CommandError(self.where, self.argv, code, stderr, hint=hint)


class LocalProc(Proc):
    def __init__(self, where, argv, env=None):
        super().__init__(where, argv)
        try:
            self._p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        except FileNotFoundError:
            raise HostError(f"{where}: {argv[0]} is not installed (not found on PATH)") from None
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self):
        for data in iter(lambda: os.read(self._p.stderr.fileno(), 65536), b""):
            self._keep_stderr(data)

    def read(self, n=CHUNK):
        return os.read(self._p.stdout.fileno(), n)

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self._p.stdin.fileno(), view):]

    def close_stdin(self):
        if not self._p.stdin.closed:
            self._p.stdin.close()

    def wait(self):
        self.close_stdin()
        code = self._p.wait()
        self._drain.join()
        self._p.stdout.close()
        return code

    def kill(self):
        if self._p.poll() is None:
            self._p.kill()


class ChannelProc(Proc):
    """A command on an SSH host, driven on paramiko's channel: bytes in, bytes out, no decoding.

    `stall` bounds every wait on the peer (seconds without a byte moving, limits.stall): a frozen
    connection or host ends in HostError instead of a hang."""

    def __init__(self, where, argv, transport, command, prologue=b"", stall=None):
        super().__init__(where, argv)
        self.stall = stall
        self._chan = transport.open_session(window_size=8 << 20, max_packet_size=1 << 15, timeout=stall)
        self._chan.settimeout(stall)
        self._chan.exec_command(command)
        if prologue:
            self._chan.sendall(prologue)
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self):
        while True:
            try:
                data = self._chan.recv_stderr(65536)
            except socket.timeout:
                if self._chan.closed:
                    return
                continue  # a quiet stderr is normal; the data channel's own timeout bounds the run
            except OSError:
                return
            if not data:
                return
            self._keep_stderr(data)

    def _frozen(self):
        return HostError(f"{self.where}: {self.argv[0]}: nothing moved for {self.stall:g} s and the host does not "
                         "answer; the connection or the host seems frozen (limits.stall bounds this wait)")

    def _still_there(self):
        """After `stall` seconds of silence: whether the SSH peer still answers a keepalive request (then
        the command is only quiet: an index being built, a long query) or not (frozen)."""
        answered = threading.Event()

        def probe():
            try:
                self._chan.get_transport().global_request("keepalive@openssh.com", wait=True)
            except Exception:  # noqa: BLE001 - any answer, even a refusal, shows the peer is alive
                pass
            answered.set()

        threading.Thread(target=probe, daemon=True).start()
        return answered.wait(min(self.stall, 15)) and not self._chan.closed

    def read(self, n=CHUNK):
        while True:
            try:
                return self._chan.recv(n)
            except socket.timeout:
                if not self._still_there():
                    raise self._frozen() from None

    def write(self, data):
        view = memoryview(data)
        while view:
            try:
                sent = self._chan.send(view)
            except socket.timeout:
                if not self._still_there():
                    raise self._frozen() from None
                continue
            if sent == 0:
                raise OSError("the SSH channel is closed")
            view = view[sent:]

    def close_stdin(self):
        if not self._chan.closed:
            try:
                self._chan.shutdown_write()
            except Exception:  # noqa: BLE001 - once the session ended paramiko raises several kinds; nothing to close
                pass

    def wait(self):
        self.close_stdin()
        while not self._chan.status_event.wait(self.stall):
            if not self._still_there():
                self._chan.close()
                raise self._frozen()
        code = self._chan.recv_exit_status()
        self._drain.join(timeout=5)
        self._chan.close()
        return code

    def kill(self):
        self._chan.close()
