"""Invoke configuration + .env -> validated, typed environments.

Given the `environments` and `backups` sections of invoke's config (DESIGN.md §2), `load()` returns a
`Project`. Every structural mistake is found here, before anything runs, and reported as one line that
names the key. `${VAR}` and `${VAR:-default}` are filled from the process environment, then from the
`.env` file beside invoke.yaml; a variable that is missing is only an error once a command needs the
value (`Project.check`), so a status of one database does not demand every secret of the project.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from .errors import ConfigError

ENGINES = ("postgres", "mongo")
VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
SSH_STRING = re.compile(r"^(?:(?P<user>[^@\s:]+)@)?(?P<host>[^@\s:]+)(?::(?P<port>\d+))?$")
DB_KEYS = {"engine", "name", "user", "container", "host", "port", "password", "uri", "after_sync"}
ENV_KEYS = {"ssh", "protected", "code", "databases"}
SSH_KEYS = {"host", "user", "port", "key_filename"}


class Secret:
    """A value that must never be printed: str() and repr() mask it; reveal() gives it."""

    def __init__(self, value):
        self._value = value

    def reveal(self):
        return self._value

    def __repr__(self):
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __bool__(self):
        return bool(self._value)


@dataclass(frozen=True)
class SSHTarget:
    host: str
    user: str = None
    port: int = 22
    key_filename: str = None

    def __str__(self):
        return f"{self.user + '@' if self.user else ''}{self.host}:{self.port}"


@dataclass(frozen=True)
class Database:
    key: str
    env: str
    engine: str
    name: str = None
    user: str = None
    container: str = None
    host: str = None
    port: int = None
    password: Secret = None
    uri: Secret = None
    after_sync: dict = field(default_factory=dict)

    @property
    def path(self):
        return f"environments.{self.env}.databases.{self.key}"


@dataclass(frozen=True)
class Environment:
    name: str
    ssh: SSHTarget = None
    protected: bool = False
    code: dict = field(default_factory=dict)
    databases: dict = field(default_factory=dict)

    def database(self, key):
        """Given a database key, return its Database. Raise ConfigError naming the known keys."""
        if key not in self.databases:
            known = ", ".join(sorted(self.databases)) or "none"
            raise ConfigError(f"unknown database {key!r} in environment {self.name!r} (known: {known})")
        return self.databases[key]


@dataclass(frozen=True)
class DjangoApp:
    """A Django app of the mirror (mirror.django[]): where its code is and how its manage.py runs."""

    name: str
    path: str                      # folder under the local code root
    settings: str                  # settings.py, relative to `path`
    python: str = "python3"        # interpreter that runs manage.py (on this machine, or in the container)
    container: str = None          # or: run manage.py with docker exec in this local container
    workdir: str = "/app"          # manage.py's folder inside that container
    env: dict = field(default_factory=dict)
    database: str = None           # database key of the app (fix-migrations, status)


@dataclass(frozen=True)
class Mirror:
    snapshots: Path
    keep: int = 5
    apps: tuple = ()
    localize: dict = field(default_factory=dict)


@dataclass
class Project:
    root: Path
    environments: dict
    backups_dir: Path
    backups_keep: int
    missing: dict = field(default_factory=dict)  # key path -> variable name
    mirror: Mirror = None
    hotfix: dict = None
    variables: dict = field(default_factory=dict, repr=False)  # environment + .env (secrets: never print)

    @property
    def state_dir(self):
        return self.root / ".prodmirror"

    def env(self, name):
        """Given an environment name, return it. Raise ConfigError naming the known ones."""
        if name not in self.environments:
            known = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(f"unknown environment {name!r} (known: {known})")
        return self.environments[name]

    def check(self, *prefixes):
        """Raise ConfigError if a `${VAR}` under one of these key paths has no value."""
        for path, var in sorted(self.missing.items()):
            if any(path == p or path.startswith(p + ".") for p in prefixes):
                raise ConfigError(f"{path}: ${{{var}}} is not set (add {var}=... to .env or the environment)")

    def pairs(self, source, target, keys=None):
        """Given two environment names and optional database keys, return [(src_db, dst_db)] matched by key.

        Raise ConfigError for an unknown environment or key, a key missing on one side, engines that
        differ, or an unset variable among the values these databases need.
        """
        src, dst = self.env(source), self.env(target)
        if keys:
            for key in keys:
                src.database(key), dst.database(key)
        chosen = list(keys) if keys else [k for k in src.databases if k in dst.databases]
        if not chosen:
            raise ConfigError(f"no database key is configured in both {source!r} and {target!r}")
        pairs = []
        for key in chosen:
            a, b = src.database(key), dst.database(key)
            if a.engine != b.engine:
                raise ConfigError(f"{b.path}.engine: {b.engine!r} differs from {a.path}.engine {a.engine!r}")
            self.check(a.path, b.path, f"environments.{source}.ssh", f"environments.{target}.ssh")
            pairs.append((a, b))
        return pairs


def load(config, root):
    """Given invoke's config (a mapping) and the project root, return a validated Project.

    Raise ConfigError with the offending key for any structural mistake.
    """
    root = Path(root)
    values = {**dotenv_values(root / ".env"), **os.environ}
    missing = {}
    expand = _Expander(values, missing)

    environments = _mapping(_get(config, "environments", {}), "environments")
    envs = {name: _environment(name, raw, expand) for name, raw in environments.items()}
    backups = _mapping(_get(config, "backups", {}), "backups")
    _only(backups, {"dir", "keep"}, "backups")
    keep = _integer(expand(backups.get("keep", 5), "backups.keep"), "backups.keep", minimum=0)
    backups_dir = root / str(expand(backups.get("dir", "backups"), "backups.dir"))
    mirror = _mirror(expand(_mapping(_get(config, "mirror", {}), "mirror"), "mirror"), root, envs)
    hotfix = _hotfix(expand(_mapping(_get(config, "hotfix", {}), "hotfix"), "hotfix"))
    return Project(root=root, environments=envs, backups_dir=backups_dir, backups_keep=keep, missing=missing,
                   mirror=mirror, hotfix=hotfix, variables=values)


def parse_duration(text, path):
    """Given '24h', '90m', '2d' or seconds, return seconds. Raise ConfigError naming `path`."""
    match = re.match(r"^\s*(\d+)\s*([smhd]?)\s*$", str(text))
    if not match:
        raise ConfigError(f"{path}: expected a duration such as 24h, 90m or 2d, got {text!r}")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


HOTFIX_KEYS = {"environment", "database", "clone", "strategy", "ttl", "dev_database", "postgrest", "migrations", "deploy"}
POSTGREST_KEYS = {"image", "name", "network", "db_host", "db_port", "db_user", "db_password", "schemas", "anon_role",
                  "jwt_secret", "port", "labels", "command", "url", "environment"}
DEPLOY_KEYS = {"repo", "dev_branch", "branch", "source", "target", "exclude"}


def _hotfix(raw):
    """Validate the `hotfix` section; return it as a dict with defaults filled (secrets wrapped)."""
    if not raw:
        return None
    _only(raw, HOTFIX_KEYS, "hotfix")
    out = {"environment": raw.get("environment", "production"), "database": raw.get("database"),
           "clone": raw.get("clone", "{name}_bugfix"), "strategy": raw.get("strategy", "auto"),
           "ttl": parse_duration(raw.get("ttl", "24h"), "hotfix.ttl"), "dev_database": raw.get("dev_database")}
    if not out["database"]:
        raise ConfigError("hotfix.database: required (the key of the production database to clone)")
    if out["strategy"] not in ("auto", "template", "dump"):
        raise ConfigError(f'hotfix.strategy: expected auto, template or dump, got "{out["strategy"]}"')
    if "{name}" not in out["clone"] and not SIMPLE_NAME.match(out["clone"]):
        raise ConfigError("hotfix.clone: a database name, or a pattern with {name}")
    postgrest = _mapping(raw.get("postgrest", {}) or {}, "hotfix.postgrest")
    if postgrest:
        _only(postgrest, POSTGREST_KEYS, "hotfix.postgrest")
        for key in ("image", "name"):
            if not postgrest.get(key):
                raise ConfigError(f"hotfix.postgrest.{key}: required")
        schemas = postgrest.get("schemas", [])
        postgrest = {"network": "bridge", "db_host": "127.0.0.1", "db_port": 5432, "db_user": "authenticator",
                     "anon_role": "web_anon", "port": 3000, "labels": {}, "command": None, "url": None,
                     "environment": {}, **postgrest,
                     "schemas": schemas if isinstance(schemas, list) else [s.strip() for s in str(schemas).split(",")],
                     "db_password": Secret(postgrest.get("db_password") or ""),
                     "jwt_secret": Secret(postgrest.get("jwt_secret") or "")}
        _mapping(postgrest["labels"], "hotfix.postgrest.labels")
    out["postgrest"] = postgrest or None
    migrations = _mapping(raw.get("migrations", {}) or {}, "hotfix.migrations")
    _only(migrations, {"dir", "pattern", "table"}, "hotfix.migrations")
    out["migrations"] = {"dir": migrations.get("dir", "migrations"), "pattern": migrations.get("pattern", "*.sql"),
                         "table": migrations.get("table", "prodmirror_migrations")}
    if not re.match(r"^[a-z_][a-z0-9_]*$", out["migrations"]["table"]):
        raise ConfigError("hotfix.migrations.table: a plain lower-case table name")
    deploy = _mapping(raw.get("deploy", {}) or {}, "hotfix.deploy")
    _only(deploy, DEPLOY_KEYS, "hotfix.deploy")
    out["deploy"] = {"dev_branch": "dev", "branch": "master", "source": ".", "exclude": [".git"], **deploy} if deploy else None
    if out["deploy"]:
        for key in ("repo", "target"):
            if not out["deploy"].get(key):
                raise ConfigError(f"hotfix.deploy.{key}: required")
    return out


SIMPLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _code(raw, path):
    """Validate environments.<env>.code: {root, paths, exclude}."""
    if not raw:
        return {}
    _only(raw, {"root", "paths", "exclude"}, path)
    if not isinstance(raw.get("root"), str) or not raw["root"]:
        raise ConfigError(f"{path}.root: required, a folder")
    paths = raw.get("paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and SIMPLE_NAME.match(p) and ".." not in p for p in paths):
        raise ConfigError(f"{path}.paths: expected a list of folder names directly under root (no '/', no '..')")
    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, str) and e and not e.startswith("-") for e in exclude):
        raise ConfigError(f"{path}.exclude: expected a list of patterns such as __pycache__ or '*.pyc'")
    return {"root": raw["root"], "paths": list(paths), "exclude": list(exclude)}


def _mirror(raw, root, envs):
    _only(raw, {"snapshots", "keep", "django", "localize", "superuser"}, "mirror")
    keep = _integer(raw.get("keep", 5), "mirror.keep", minimum=1)
    apps = []
    for i, app in enumerate(raw.get("django", []) or []):
        path = f"mirror.django[{i}]"
        app = _mapping(app, path)
        _only(app, {"name", "path", "settings", "python", "container", "workdir", "env", "database"}, path)
        for key in ("name", "path", "settings"):
            if not isinstance(app.get(key), str) or not app[key]:
                raise ConfigError(f"{path}.{key}: required")
        if ".." in app["path"] or app["path"].startswith("/") or ".." in app["settings"]:
            raise ConfigError(f"{path}: path and settings are relative folders inside the code root")
        env = _mapping(app.get("env", {}) or {}, f"{path}.env")
        apps.append(DjangoApp(name=app["name"], path=app["path"], settings=app["settings"],
                              python=app.get("python") or "python3", container=app.get("container") or None,
                              workdir=app.get("workdir") or "/app", env={k: str(v) for k, v in env.items()},
                              database=app.get("database") or None))
    localize = _mapping(raw.get("localize", {}) or {}, "mirror.localize")
    for key in localize:
        if not SETTING.match(str(key)):
            raise ConfigError(f"mirror.localize.{key}: a Django setting name (UPPER_CASE)")
    localize = localize or {"DEBUG": True, "ALLOWED_HOSTS": ["*"],
                            "CSRF_TRUSTED_ORIGINS": ["http://localhost:8000", "http://127.0.0.1:8000"]}
    return Mirror(snapshots=root / str(raw.get("snapshots", "mirror/snapshots")), keep=keep, apps=tuple(apps),
                  localize=localize)


class _Expander:
    """Fill `${VAR}` in strings; note the key path of every variable that has no value."""

    def __init__(self, values, missing):
        self.values, self.missing = values, missing

    def __call__(self, value, path):
        if isinstance(value, dict):
            return {k: self(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def fill(match):
            name, default = match.group(1), match.group(2)
            if self.values.get(name) not in (None, ""):
                return self.values[name]
            if default is not None:
                return default
            self.missing.setdefault(path, name)
            return ""

        return VAR.sub(fill, value)


def _environment(name, raw, expand):
    path = f"environments.{name}"
    raw = _mapping(raw if raw is not None else {}, path)
    _only(raw, ENV_KEYS, path)
    protected = raw.get("protected", name == "production")
    if not isinstance(protected, bool):
        raise ConfigError(f"{path}.protected: expected true or false, got {protected!r}")
    databases = _mapping(raw.get("databases", {}) or {}, f"{path}.databases")
    dbs = {key: _database(name, key, spec, expand) for key, spec in databases.items()}
    code = _code(_mapping(expand(raw.get("code", {}) or {}, f"{path}.code"), f"{path}.code"), f"{path}.code")
    return Environment(name=name, ssh=_ssh(raw.get("ssh"), f"{path}.ssh", expand), protected=protected,
                       code=code, databases=dbs)


def _ssh(raw, path, expand):
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
    raw = _mapping(raw, path)
    _only(raw, SSH_KEYS, path)
    if not raw.get("host"):
        raise ConfigError(f"{path}.host: required")
    port = _integer(raw.get("port", 22) or 22, f"{path}.port", minimum=1, maximum=65535)
    key = raw.get("key_filename") or None
    return SSHTarget(host=str(raw["host"]), user=raw.get("user") or None, port=port,
                     key_filename=str(Path(key).expanduser()) if key else None)


def _database(env, key, raw, expand):
    path = f"environments.{env}.databases.{key}"
    if not re.match(r"^[A-Za-z0-9_-]+$", str(key)):
        raise ConfigError(f"{path}: a database key holds letters, digits, '_' and '-' only")
    raw = _mapping(raw, path)
    _only(raw, DB_KEYS, path)
    engine = raw.get("engine")
    if engine not in ENGINES:
        raise ConfigError(f'{path}.engine: expected postgres or mongo, got "{engine}"')
    values = {k: expand(v, f"{path}.{k}") for k, v in raw.items() if k not in ("engine", "after_sync")}
    if engine == "postgres":
        for required in ("name", "user"):
            if not values.get(required) and f"{path}.{required}" not in expand.missing:
                raise ConfigError(f"{path}.{required}: required for a postgres database")
    if engine == "mongo" and not values.get("uri") and f"{path}.uri" not in expand.missing:
        raise ConfigError(f"{path}.uri: required for a mongo database")
    for text_key in ("name", "user", "container", "host"):
        if values.get(text_key) is not None and not isinstance(values[text_key], str):
            raise ConfigError(f"{path}.{text_key}: expected text, got {values[text_key]!r}")
        if values.get(text_key) and not re.match(r"^[A-Za-z0-9_.:-]+$", values[text_key]):
            raise ConfigError(f"{path}.{text_key}: unexpected characters in {values[text_key]!r}")
    port = values.get("port")
    if port not in (None, ""):
        port = _integer(port, f"{path}.port", minimum=1, maximum=65535)
    for secret in ("password", "uri"):
        if "\n" in str(values.get(secret) or ""):
            raise ConfigError(f"{path}.{secret}: must be one line")
    after_sync = _after_sync(expand(raw.get("after_sync", {}) or {}, f"{path}.after_sync"), f"{path}.after_sync",
                             engine)
    return Database(
        key=key, env=env, engine=engine, name=values.get("name") or None, user=values.get("user") or None,
        container=values.get("container") or None, host=values.get("host") or None,
        port=port or None, password=Secret(values["password"]) if values.get("password") else None,
        uri=Secret(values["uri"]) if values.get("uri") else None, after_sync=after_sync,
    )


SCHEMES = ("bcrypt", "pbkdf2_sha256")


def _after_sync(raw, path, engine):
    """Validate `after_sync`: {reset_passwords: {...}, run: [commands]}; return it with defaults filled."""
    raw = _mapping(raw, path)
    _only(raw, {"reset_passwords", "run"}, path)
    out = {}
    if "reset_passwords" in raw:
        rp_path = f"{path}.reset_passwords"
        rp = _mapping(raw["reset_passwords"], rp_path)
        where = "collection" if engine == "mongo" else "table"
        _only(rp, {where, "match", "users", "field", "scheme", "password"}, rp_path)
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


def _get(config, key, default):
    try:
        value = config[key]
    except (KeyError, AttributeError):
        return default
    return plain(value) if value is not None else default


def plain(value):
    """Given an invoke DataProxy (or any mapping/list tree), return plain dicts and lists."""
    if hasattr(value, "items") and not isinstance(value, str):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def _mapping(value, path):
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def _only(mapping, allowed, path):
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown key (expected one of: {', '.join(sorted(allowed))})")


def _integer(value, path, minimum=None, maximum=None):
    try:
        number = int(value)
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: expected a whole number, got {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"{path}: {number} is out of range")
    return number
