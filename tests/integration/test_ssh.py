"""The SSH host against a real sshd on 127.0.0.1: trust on first use, a changed key refused, a wrong
key refused, secrets carried on stdin (never argv), binary data unaltered."""

import hashlib
import subprocess

import pytest

from tasks.config import SSHTarget
from tasks.errors import HostError
from tasks.hosts import SSHHost


def host_for(sshd, tmp_path, key=None):
    target = SSHTarget(host="127.0.0.1", user=sshd.user, port=sshd.port, key_filename=key or sshd.client_key)
    return SSHHost("production", target, tmp_path / "known_hosts")


def test_first_connection_trusts_and_records_host_key(sshd, tmp_path):
    host = host_for(sshd, tmp_path)
    assert host.run(["echo", "hello world"]).stdout == "hello world\n"
    host.close()
    assert f"[127.0.0.1]:{sshd.port} ssh-ed25519" in (tmp_path / "known_hosts").read_text()
    again = host_for(sshd, tmp_path)  # second time: the recorded key matches
    assert again.run(["true"]).code == 0
    again.close()


def test_changed_host_key_is_refused(sshd, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    key_type, blob = open(f"{other}.pub").read().split()[:2]
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{sshd.port} {key_type} {blob}\n")
    with pytest.raises(HostError, match="host key changed .* refusing to connect"):
        host_for(sshd, tmp_path).run(["true"])


def test_wrong_key_is_refused(sshd, tmp_path):
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    with pytest.raises(HostError, match="authentication failed"):
        host_for(sshd, tmp_path, key=str(stranger)).run(["true"])


def test_secret_travels_on_stdin_not_argv(sshd, tmp_path):
    host = host_for(sshd, tmp_path)
    # The remote command prints its own environment value and its full command line as ps sees it.
    res = host.run(["sh", "-c", 'printf "%s\\n" "$PGPASSWORD"; cat /proc/$$/cmdline | tr "\\0" " "'],
                   env={"PGPASSWORD": "s3cret-value"})
    value, cmdline = res.stdout.split("\n", 1)
    assert value == "s3cret-value" and "s3cret-value" not in cmdline
    host.close()


def test_stream_moves_binary_bytes_unaltered(sshd, tmp_path):
    host = host_for(sshd, tmp_path)
    payload = bytes(range(256)) * 4096 + b"\xff\xfe\x00invalid utf-8 \xc3\x28"
    proc = host.stream(["cat"])
    proc.write(payload)
    proc.close_stdin()
    got = b"".join(iter(proc.read, b""))
    assert proc.wait() == 0 and hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
    host.close()
