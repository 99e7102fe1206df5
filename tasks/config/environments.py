"""The `environments` section: SSH targets, protection, code folders and databases, per environment.

What a database needs depends on its engine, and the engine module says so itself (REQUIRED_KEYS,
OBJECT_WORD; see engines/base.py): nothing here lists engines.
"""

import re
from pathlib import Path

from .. import engines
from ..errors import ConfigError
from .model import Database, Environment, Secret, SSHTarget
from .validate import SIMPLE_NAME, integer, mapping, only

SSH_STRING = re.compile(r"^(?:(?P<user>[^@\s:]+)@)?(?P<host>[^@\s:]+)(?::(?P<port>\d+))?$")
DB_KEYS = {"engine", "name", "user", "container", "host", "port", "password", "uri", "after_sync", "exclude_data"}
ENV_KEYS = {"ssh", "protected", "code", "databases"}
SSH_KEYS = {"host", "user", "port", "key_filename"}
SCHEMES = ("bcrypt", "pbkdf2_sha256")


def validate(raw, expand):
    """Given the raw `environments` mapping, return {name: Environment}."""
    raw = mapping(raw, "environments")
    return {name: environment(name, spec, expand) for name, spec in raw.items()}


def environment(name, raw, expand):
    path = f"environments.{name}"
    raw = mapping(raw if raw is not None else {}, path)
    only(raw, ENV_KEYS, path)
    protected = raw.get("protected", name == "production")
    if not isinstance(protected, bool):
        raise ConfigError(f"{path}.protected: expected true or false, got {protected!r}")
    databases = mapping(raw.get("databases", {}) or {}, f"{path}.databases")
    dbs = {key: database(name, key, spec, expand, protected) for key, spec in databases.items()}
    code_cfg = code(mapping(expand(raw.get("code", {}) or {}, f"{path}.code"), f"{path}.code"), f"{path}.code")
    return Environment(name=name, ssh=ssh(raw.get("ssh"), f"{path}.ssh", expand), protected=protected,
                       code=code_cfg, databases=dbs)


def code(raw, path):
    """Validate environments.<env>.code: {root, paths, exclude}."""
    if not raw:
        return {}
    only(raw, {"root", "paths", "exclude"}, path)
    if not isinstance(raw.get("root"), str) or not raw["root"]:
        raise ConfigError(f"{path}.root: required, a folder")
    paths = raw.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and SIMPLE_NAME.match(p) and ".." not in p for p in paths):
        raise ConfigError(f"{path}.paths: expected a list of folder names directly under root (no '/', no '..')")
    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, str) and e and not e.startswith("-") for e in exclude):
        raise ConfigError(f"{path}.exclude: expected a list of patterns such as __pycache__ or '*.pyc'")
    return {"root": raw["root"], "paths": list(paths), "exclude": list(exclude)}


def ssh(raw, path, expand):
    if raw in (None, ""):
        return None
    raw = expand(raw, path)
    if isinstance(raw, str):
        if raw == "":
            return None  # a ${VAR} that is unset: Project.check reports it when a command needs it
        match = SSH_STRING.match(raw)
        if not match:
            raise ConfigError(f'{path}: expected "user@host[:port]", got {raw!r}')
        raw = {k: v for k, v in match.groupdict().items() if v}
    raw = mapping(raw, path)
    only(raw, SSH_KEYS, path)
    if not raw.get("host"):
        raise ConfigError(f"{path}.host: required")
    port = raw.get("port")
    port = 22 if port in (None, "") else integer(port, f"{path}.port", minimum=1, maximum=65535)
    key = raw.get("key_filename") or None
    return SSHTarget(host=str(raw["host"]), user=raw.get("user") or None, port=port,
                     key_filename=str(Path(key).expanduser()) if key else None)


def database(env, key, raw, expand, protected=False):
    path = f"environments.{env}.databases.{key}"
    if not re.match(r"^[A-Za-z0-9_-]+$", str(key)):
        raise ConfigError(f"{path}: a database key holds letters, digits, '_' and '-' only")
    raw = mapping(raw, path)
    only(raw, DB_KEYS, path)
    engine = engines.module(raw.get("engine"), f"{path}.engine")
    values = {k: expand(v, f"{path}.{k}") for k, v in raw.items() if k not in ("engine", "after_sync", "exclude_data")}
    for required in engine.REQUIRED_KEYS:
        if not values.get(required) and f"{path}.{required}" not in expand.missing:
            raise ConfigError(f"{path}.{required}: required for a {raw['engine']} database")
    for text_key in ("name", "user", "container", "host"):
        if values.get(text_key) is not None and not isinstance(values[text_key], str):
            raise ConfigError(f"{path}.{text_key}: expected text, got {values[text_key]!r}")
        if values.get(text_key) and not re.match(r"^[A-Za-z0-9_.:-]+$", values[text_key]):
            raise ConfigError(f"{path}.{text_key}: unexpected characters in {values[text_key]!r}")
    port = values.get("port")
    if port not in (None, ""):
        port = integer(port, f"{path}.port", minimum=1, maximum=65535)
    for secret in ("password", "uri"):
        if "\n" in str(values.get(secret) or ""):
            raise ConfigError(f"{path}.{secret}: must be one line")
    hooks = after_sync(expand(raw.get("after_sync", {}) or {}, f"{path}.after_sync"), f"{path}.after_sync",
                       engine.OBJECT_WORD)
    return Database(
        key=key, env=env, engine=raw["engine"], name=values.get("name") or None, user=values.get("user") or None,
        container=values.get("container") or None, host=values.get("host") or None,
        port=port or None, password=Secret(values["password"]) if values.get("password") else None,
        uri=Secret(values["uri"]) if values.get("uri") else None, after_sync=hooks,
        exclude_data=exclude_data(expand(raw.get("exclude_data"), f"{path}.exclude_data"), f"{path}.exclude_data",
                                  engine.OBJECT_WORD),
        protected=protected,
    )


def exclude_data(raw, path, word):
    """Validate `exclude_data`: a list of glob patterns (non-empty, one line each); return them as a tuple.

    `word` is the engine's word for what they name (table, collection)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(p, str) and p.strip() and p.isprintable() for p in raw):
        shown = repr(raw) if len(repr(raw)) <= 80 else repr(raw)[:79] + "…"
        raise ConfigError(f"{path}: expected a list of {word} name patterns such as sessions or 'audit_*', got {shown}")
    return tuple(raw)


def after_sync(raw, path, where):
    """Validate `after_sync`: {reset_passwords: {...}, run: [commands]}; return it with defaults filled.

    `where` is the engine's word for the object holding the users (table, collection)."""
    raw = mapping(raw, path)
    only(raw, {"reset_passwords", "run"}, path)
    out = {}
    if "reset_passwords" in raw:
        rp_path = f"{path}.reset_passwords"
        rp = mapping(raw["reset_passwords"], rp_path)
        only(rp, {where, "match", "users", "field", "scheme", "password"}, rp_path)
        for key in (where, "match", "field"):
            if not isinstance(rp.get(key), str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", rp[key]):
                raise ConfigError(f"{rp_path}.{key}: required, a plain name (letters, digits, '_', '.')")
        users = rp.get("users")
        if not isinstance(users, list) or not users or not all(isinstance(u, str) and u for u in users):
            raise ConfigError(f"{rp_path}.users: expected a non-empty list of {rp['match']} values")
        scheme = rp.get("scheme", "bcrypt")
        if scheme not in SCHEMES:
            raise ConfigError(f'{rp_path}.scheme: expected one of {", ".join(SCHEMES)}, got "{scheme}"')
        if "password" not in rp:
            raise ConfigError(f"{rp_path}.password: required; write ${{VAR}} and put VAR in .env (there is no default)")
        out["reset_passwords"] = {**rp, "scheme": scheme, "password": Secret(rp["password"]), "where": where}
    if "run" in raw:
        run = raw["run"]
        if not isinstance(run, list) or not all(isinstance(cmd, str) and cmd.strip() for cmd in run):
            raise ConfigError(f"{path}.run: expected a list of commands")
        out["run"] = run
    return out
