"""After-sync hooks (config `after_sync` of a target database): reset key users' passwords, run commands.

They run on the environment the data just landed in, after every sync into that database; what they
did goes into the audit record. No password has a default: it comes from the environment or .env.
"""

import base64
import hashlib
import secrets

from .engines import engine_for
from .errors import ProdmirrorError, last_line
from .ui import say

PBKDF2_ITERATIONS = 1_000_000  # Django 5.2's default for pbkdf2_sha256


def hash_password(password, scheme):
    """Given a password and a scheme (bcrypt | pbkdf2_sha256), return the stored-hash text."""
    if scheme == "bcrypt":
        import bcrypt

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()
    if scheme == "pbkdf2_sha256":
        salt = secrets.token_urlsafe(16)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS)
        return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${base64.b64encode(digest).decode()}"
    raise ProdmirrorError(f"unknown password scheme {scheme!r}")


def run_after_sync(project, hosts, db):
    """Run the after_sync hooks of database `db`; return a summary for the audit log (never the password)."""
    hooks, done = db.after_sync, {}
    if not hooks:
        return done
    if "reset_passwords" in hooks:
        spec = hooks["reset_passwords"]
        password = spec["password"].reveal()
        if not password:
            raise ProdmirrorError(f"{db.path}.after_sync.reset_passwords.password is empty")
        hashed = {user: hash_password(password, spec["scheme"]) for user in spec["users"]}
        found = engine_for(db).reset_passwords(hosts.for_db(db), db, spec[spec["where"]], spec["match"],
                                               spec["field"], spec["users"], hashed)
        missing = [u for u in spec["users"] if u not in found]
        say(f"{db.env}/{db.key}: password reset for {len(found)} of {len(spec['users'])} users"
            + (f" (not found: {', '.join(missing)})" if missing else ""))
        done["reset_passwords"] = {"reset": len(found), "not_found": len(missing)}
    for command in hooks.get("run", []):
        host = hosts.for_env(project.env(db.env))
        res = host.run(["sh", "-c", command], check=False)
        done.setdefault("run", []).append({"command": command, "exit": res.code})
        if res.code != 0:
            raise ProdmirrorError(f"{db.env}/{db.key}: after_sync command {command!r} failed (exit {res.code}): "
                                  f"{last_line(res.stderr) or last_line(res.stdout)}; the synced data stays in place")
        say(f"{db.env}/{db.key}: ran {command!r}")
    return done
