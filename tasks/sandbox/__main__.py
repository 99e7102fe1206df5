"""`python -m tasks.sandbox up|down`: a throwaway production (Postgres behind a real sshd on 127.0.0.1)
and local (a second Postgres) on this machine, and a .env that points invoke.yaml at them."""

import json
import os
import shutil
import sys
from pathlib import Path

from . import owned_dir, service_user
from .postgres import Cluster
from .sshd import SSHServer
from . import sample
from .sample import shop

BASE = Path("/tmp/prodmirror-sandbox")
MARK = "# written by `python -m tasks.sandbox up`: the built-in sandbox"
ROOT = Path(__file__).resolve().parents[2]


def up():
    user, uid, gid = service_user()
    state_file = BASE / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    owned_dir(BASE, uid, gid)
    os.chmod(BASE, 0o755)
    prod = Cluster(str(BASE), "production", uid, gid, port=state.get("production_port")).init()
    local = Cluster(str(BASE), "local", uid, gid, port=state.get("local_port")).init()
    sshd = SSHServer(str(BASE), user, uid, gid, port=state.get("ssh_port")).prepare()
    for cluster in (prod, local):
        try:
            cluster.psql("SELECT 1")
        except RuntimeError:
            cluster.start()
    try:
        if not _listening(sshd.port):
            sshd.start(foreground=False)
    except RuntimeError as exc:
        sys.exit(f"sandbox: {exc}")
    prod.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spmo_admin') "
              "THEN CREATE ROLE spmo_admin LOGIN SUPERUSER; END IF; END $$;")
    local.psql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spmo_admin') "
               "THEN CREATE ROLE spmo_admin LOGIN CREATEDB; END IF; END $$;")
    # db_store is the shop (sample/shop.py): partitions, identity and generated columns, large objects
    for db, create in (("db_gamit", lambda: sample.create(prod, "db_gamit", "spmo_admin", users=500)),
                       ("db_store", lambda: shop.create(prod, "db_store", "spmo_admin"))):
        if not prod.psql(f"SELECT 1 FROM pg_database WHERE datname = '{db}'").strip():
            create()
    state = {"production_port": prod.port, "local_port": local.port, "ssh_port": sshd.port}
    state_file.write_text(json.dumps(state))
    _write_env({"PRODUCTION_SSH_HOST": "127.0.0.1", "PRODUCTION_SSH_USER": user,
                "PRODUCTION_SSH_PORT": sshd.port, "PRODUCTION_SSH_KEY": sshd.client_key,
                "PRODUCTION_PG_PORT": prod.port, "LOCAL_PG_PORT": local.port})
    print(f"sandbox up: production = {user}@127.0.0.1:{sshd.port} (Postgres on 127.0.0.1:{prod.port} there), "
          f"local = Postgres on 127.0.0.1:{local.port}; settings in {ROOT / '.env'}")


def _listening(port):
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _write_env(values):
    env = ROOT / ".env"
    if env.exists() and not env.read_text().startswith(MARK):
        sys.exit(f"sandbox: {env} exists and was not written by the sandbox; move it away first")
    env.write_text(MARK + "\n" + "".join(f"{k}={v}\n" for k, v in values.items()))


def down():
    user, uid, gid = service_user()
    for name in ("production", "local"):
        Cluster(str(BASE), name, uid, gid, port=1).stop()
    SSHServer(str(BASE), user, uid, gid, port=1).stop()
    shutil.rmtree(BASE, ignore_errors=True)
    env = ROOT / ".env"
    if env.exists() and env.read_text().startswith(MARK):
        env.unlink()
    print("sandbox down")


if __name__ == "__main__":
    {"up": up, "down": down}.get(sys.argv[1] if len(sys.argv) > 1 else "", lambda: sys.exit(
        "usage: python -m tasks.sandbox up|down"))()
