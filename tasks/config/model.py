"""The typed configuration: what `config.load()` returns. Every section is a frozen dataclass built by
its validator (environments.py, backups.py, mirror.py, hotfix.py in this folder); secrets are `Secret`."""

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError


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

    def __hash__(self):
        return hash(self._value)

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
    exclude_data: tuple = ()  # glob patterns: tables whose rows (collections that) copies leave out (exclude_data.py)
    protected: bool = False  # its environment's: engines that would change more than the data refuse there

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
class Backups:
    dir: Path
    keep: int
    keep_databases: int = 2  # previous local databases kept (renamed) instead of dumped; 0: dump them


@dataclass(frozen=True)
class Limits:
    """How long prodmirror waits before it gives up, in seconds (config section `limits`)."""

    stall: float = 120      # an SSH transfer or command through which nothing moves (a frozen connection)
    lock_wait: float = 60   # a lock held on a target: pg_dump's shared locks, a table replace, the swap
    container_ready: float = 60  # a started container (PostgREST) until it is ready: healthy, or answering


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
    database: str = None           # key of the local database every manage.py run must use (None: undecided)
    key: str = "mirror.django[0]"  # where it is configured, for messages


@dataclass(frozen=True)
class Mirror:
    snapshots: Path
    keep: int = 5
    apps: tuple = ()
    localize: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Postgrest:
    """hotfix.postgrest: the ephemeral PostgREST container."""

    image: str
    name: str
    network: str = "bridge"
    db_host: str = "127.0.0.1"
    db_port: int = 5432
    db_user: str = "authenticator"
    db_password: Secret = Secret("")
    schemas: tuple = ()
    anon_role: str = "web_anon"
    jwt_secret: Secret = Secret("")
    port: int = 3000
    labels: dict = field(default_factory=dict)
    command: object = None
    url: str = None
    environment: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Migrations:
    dir: str = "migrations"
    pattern: str = "*.sql"
    table: str = "prodmirror_migrations"


@dataclass(frozen=True)
class Deploy:
    repo: str
    target: str
    dev_branch: str = "dev"
    branch: str = "master"
    source: str = "."
    exclude: tuple = (".git",)


@dataclass(frozen=True)
class Duration:
    """A length of time as the user wrote it: `seconds` to compute with, `text` ('24h', never 86400) to show."""

    seconds: int
    text: str

    def __str__(self):
        return self.text


@dataclass(frozen=True)
class Hotfix:
    database: str
    environment: str = "production"
    clone: str = "{name}_bugfix"
    strategy: str = "auto"
    ttl: Duration = Duration(86400, "24h")
    dev_database: str = None
    postgrest: Postgrest = None
    migrations: Migrations = Migrations()
    deploy: Deploy = None


@dataclass
class Project:
    root: Path
    environments: dict
    backups: Backups
    missing: dict = field(default_factory=dict)  # key path -> variable name
    mirror: Mirror = None
    hotfix: Hotfix = None
    limits: Limits = Limits()
    variables: dict = field(default_factory=dict, repr=False)  # environment + .env (secrets: never print)

    @property
    def state_dir(self):
        return self.root / ".prodmirror"

    @property
    def backups_dir(self):
        return self.backups.dir

    @property
    def backups_keep(self):
        return self.backups.keep

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
