"""mirror.* (seed 000): production → local mirror of Django apps, their code and media, and their
databases, kept as timestamped snapshots.

A snapshot (`mirror.snapshots/production_<YYYYmmdd_HHMMSS>/`) holds `code.tar`, one dump per
database and a manifest (sha256 of each, sizes, source, time); it is the backup store's format, so
it is written as `.partial-…` and renamed into place only when complete, and the newest
`mirror.keep` are kept.
"""

import json
import posixpath
import subprocess
from datetime import datetime, timezone

from .. import audit, backup_store, code, django_apps, django_migrations, django_settings, worktree
from ..engines import engine_for
from ..errors import ConfigError, ProdmirrorError
from ..hosts import check_containers
from ..transfer import End, FileSource, pump
from ..ui import Progress, human_bytes, say
from ..worktree import check_clean
from .backup import restore_into
from .run import Run


def _local_root(project):
    """Return the local code root (environments.local.code.root, default `mirror` beside invoke.yaml)."""
    local = project.env("local").code if "local" in project.environments else {}
    return project.root / (local.get("root") if local else "mirror")


def _code(project):
    """Return (production code config, local code root) or raise ConfigError naming the key."""
    prod = project.env("production").code
    if not prod or not prod.get("paths"):
        raise ConfigError("environments.production.code: required for mirror tasks ({root, paths, exclude})")
    return prod, _local_root(project)


def _snapshot(project, name=None):
    """Return the named snapshot, or the newest complete one. Raise ProdmirrorError if there is none."""
    if name:
        return backup_store.get(project, name, project.mirror.snapshots)
    found = backup_store.list_backups(project, project.mirror.snapshots)
    if not found:
        raise ProdmirrorError(f"no snapshot in {project.mirror.snapshots}: run `inv mirror.production` first")
    return found[0]


class _GuardOnly(End):
    """A sink that only validates the archive (for --download-only: an unsafe snapshot is refused at once)."""

    def __init__(self, paths):
        self.guard = code.TarGuard(paths)

    def write(self, chunk):
        self.guard.feed(chunk)


def _localize(project, site):
    """Write the localize block (settings and the local database) into the site's settings.py; return True if changed."""
    return django_settings.localize(site.root / site.app.path / site.app.settings, project.mirror.localize,
                                    django_apps.connection(site))


def _after_code(project, sites, credentials=None):
    """Localize settings, create the superuser (when credentials are given), collectstatic, for every app."""
    for site in sites:
        changed = _localize(project, site)
        say(f"{site.app.name}: settings {'localized' if changed else 'already localized'} "
            f"({site.root / site.app.path / site.app.settings}; database: local {site.db.key})")
        if credentials:
            _superuser(site, credentials)
        django_apps.manage(site, "collectstatic", "--noinput", "--verbosity", "0")
        say(f"{site.app.name}: collectstatic done")


def _superuser(site, credentials):
    say(f"{site.app.name}: superuser {credentials['DJANGO_SUPERUSER_USERNAME']} "
        f"{django_apps.create_superuser(site, credentials)} in local {site.db.key}")


def _exclusions(project, folders):
    """Return (plan steps, apply) keeping `folders`, prodmirror's output, out of the ops repo's git."""
    exclude, lines = worktree.exclusions(project.root, folders)
    steps = [f"keep {', '.join(lines)} out of the ops repo's git ({exclude})"] if lines else []
    return steps, lambda: worktree.keep_out_of_git(exclude, lines)


def production(project, download_only=False, force=False, dry_run=False, echo=False):
    """Mirror production into a new snapshot; unless download_only, restore it locally. Return the audit record."""
    prod_code, root = _code(project)
    prod_env = project.env("production")
    dbs = list(prod_env.databases.values())
    local_env = project.env("local")
    restore = [db for db in dbs if db.key in local_env.databases]
    creds, sites = None, []
    if not download_only and project.mirror.apps:
        sites = django_apps.bind(project, root)
        try:
            creds = django_apps.superuser_credentials(project.variables)
        except ConfigError as exc:
            say(f"note: the superuser will not be created: {exc}")
    ignore, keep_out = _exclusions(project, ([] if download_only else [root, *(root / p for p in prod_code["paths"])])
                                   + [project.mirror.snapshots])
    project.check("environments.production.ssh", *[db.path for db in dbs],
                  *[local_env.database(db.key).path for db in restore])
    steps = ["lock production and local", *ignore,
             f"stream tar of {', '.join(prod_code['paths'])} from production {prod_code['root']} "
             f"(excluding {', '.join(prod_code.get('exclude', [])) or 'nothing'}) into a new snapshot"
             + ("" if download_only else f", extracting safely into a staging folder beside {root}"),
             *[f"dump production {db.key} ({db.name or db.engine}) into the snapshot" for db in dbs],
             f"keep the newest {project.mirror.keep} snapshots in {project.mirror.snapshots}"]
    if not download_only:
        steps += [f"replace local {', '.join(prod_code['paths'])} under {root} with the snapshot's",
                  *[f"back up local {db.key}, then restore it from the snapshot atomically" for db in restore],
                  *[f"{site.app.name}: localize settings (database: local {site.db.key}), "
                    f"{'create the superuser, ' if creds else ''}collectstatic" for site in sites]]
    with Run(project, "mirror.production", ["production", "local"], dry_run=dry_run, echo=echo,
             direction="production -> local") as run:
        if not run.proceed("mirror.production", steps):
            return None
        keep_out()
        if not download_only:
            check_clean(root, prod_code["paths"], force)
        rec, hosts = run.record, run.hosts
        host = hosts.for_env(prod_env)
        for db in dbs:
            check_containers(hosts.for_db(db))
        writer = backup_store.BackupWriter(project, "production", "mirror.production",
                                           folder=project.mirror.snapshots, keep=project.mirror.keep)
        extract = None
        try:
            extract = None if download_only else code.GuardedExtract(root, prod_code["paths"])
            proc = host.stream(code.archive_argv(prod_code))
            entry = writer.add_stream("code.tar", proc, "production/code",
                                      also=[extract or _GuardOnly(prod_code["paths"])])
            if extract:
                extract.check()
            writer.manifest["code"] = {**entry, "root": prod_code["root"], "paths": prod_code["paths"],
                                       "exclude": prod_code.get("exclude", []), "source": str(prod_env.ssh or "local")}
            for db in dbs:
                writer.add(hosts.for_db(db), db)
            snapshot = writer.commit()
        except BaseException:
            writer.abort()
            if extract:
                extract.discard()
            raise
        rec["snapshot"] = snapshot.name
        say(f"snapshot {snapshot.name} complete: code {human_bytes(entry['size'])}, "
            f"{len(dbs)} database(s)")
        if download_only:
            return rec
        extract.swap_in()
        say(f"code replaced under {root}")
        if restore:
            restore_into(run, snapshot, "local", [local_env.database(db.key) for db in restore], force=force,
                         paths={db.key: snapshot.file(db.key) for db in restore})  # verified as written
        _after_code(project, sites, creds)
        # fingerprinted after the mirror's own steps (the superuser row is part of the mirrored state)
        _record_restored(project, hosts, snapshot, [local_env.database(db.key) for db in restore])
        say(f"mirror.production: done: snapshot {snapshot.name}; code {', '.join(prod_code['paths'])}; "
            f"databases {', '.join(db.key for db in restore) or 'none'}"
            + (f"; previous local data in backup {rec['backup']}" if rec.get("backup") else ""))
        return rec


def _record_restored(project, hosts, snapshot, dbs):
    """Remember the local fingerprints right after a restore, and when, so mirror.status can tell which
    snapshot local holds and whether its data moved since."""
    restored, when = snapshot.manifest.setdefault("restored", {}), snapshot.manifest.setdefault("restored_at", {})
    for db in dbs:
        restored[db.key] = engine_for(db).fingerprint(hosts.for_db(db), db)
        when[db.key] = datetime.now(timezone.utc).isoformat()
    backup_store.save_manifest(snapshot)


def force_sync_code(project, snapshot=None, force=False, dry_run=False):
    """Nuke & pave: replace the local app folders with the snapshot's, then localize and collectstatic."""
    prod_code, root = _code(project)
    snap = _snapshot(project, snapshot)
    if "code" not in snap.manifest:
        raise ProdmirrorError(f"snapshot {snap.name} holds no code archive")
    paths = snap.manifest["code"]["paths"]
    sites = django_apps.bind(project, root) if project.mirror.apps else []
    ignore, keep_out = _exclusions(project, [root, *(root / p for p in paths)])
    steps = [*ignore, f"verify {snap.name}/code.tar (sha256)", f"delete local {', '.join(paths)} under {root}",
             "extract the snapshot's folders safely (no absolute paths, no '..', no links out of the tree)",
             *[f"{site.app.name}: localize settings (database: local {site.db.key}), collectstatic" for site in sites]]
    with Run(project, "mirror.force-sync-code", ["local"], dry_run=dry_run, snapshot=snap.name) as run:
        if not run.proceed("mirror.force-sync-code", steps):
            return None
        keep_out()
        check_clean(root, paths, force)
        archive = snap.verify_entry(snap.manifest["code"])
        extract = code.GuardedExtract(root, paths)
        source = FileSource(archive)
        try:
            with Progress(f"code from {snap.name}") as progress:
                pump(source, [extract], progress)
            extract.check()
            extract.swap_in()
        except BaseException:
            extract.discard()
            raise
        finally:
            source.close()
        say(f"code replaced under {root} from {snap.name}")
        _after_code(project, sites)
        return run.record


def localize_settings(project):
    """Write the managed localize block (settings, and Django's default database set to the app's local
    one) into every configured app's settings.py; return {app: changed}."""
    changed = {}
    for site in django_apps.bind(project, _local_root(project)):
        changed[site.app.name] = _localize(project, site)
        say(f"{site.app.name}: {'localized' if changed[site.app.name] else 'unchanged (already localized)'}: "
            f"{site.root / site.app.path / site.app.settings} (database: local {site.db.key})")
    return changed


def restore_db(project, keys=None, snapshot=None, force=False, dry_run=False, echo=False):
    """Drop & create & restore local databases from a snapshot (atomically, local backed up first)."""
    snap = _snapshot(project, snapshot)
    local_env = project.env("local")
    chosen = list(keys) if keys else [k for k in snap.databases if k in local_env.databases]
    for key in chosen:
        if key not in snap.databases:
            raise ProdmirrorError(f"snapshot {snap.name} holds no database {key!r} (it has: {', '.join(snap.databases)})")
    if not chosen:
        raise ProdmirrorError(f"snapshot {snap.name} holds no database that local also configures")
    dbs = [local_env.database(k) for k in chosen]
    project.check(*[db.path for db in dbs])
    creds, sites, note = None, [], None
    if any(app.database in (None, *chosen) for app in project.mirror.apps):
        try:
            creds = django_apps.superuser_credentials(project.variables)
        except ConfigError:
            note = ("note: restoring replaced the user table, so the local superuser is gone; set "
                    f"{', '.join(django_apps.SUPERUSER_VARS)} in .env to have it recreated (or run mirror.create-superuser)")
    if creds:
        sites = [s for s in django_apps.bind(project, _local_root(project)) if s.db.key in chosen]
    steps = ["lock local", f"back up local: {', '.join(chosen)} (those that exist)",
             *[f"{k}: restore into a new database, terminate sessions on {db.name}, swap it in" for k, db in zip(chosen, dbs)],
             *[f"{s.app.name}: recreate the superuser {creds['DJANGO_SUPERUSER_USERNAME']} (restoring replaces "
               f"the user table)" for s in sites]]
    with Run(project, "mirror.restore-db", ["local"], dry_run=dry_run, echo=echo, snapshot=snap.name,
             databases=chosen) as run:
        if not run.proceed(f"mirror.restore-db from {snap.name}", steps):
            return None
        for site in sites:  # refused here, before the restore, it changes nothing
            django_apps.check_database(site)
        restore_into(run, snap, "local", dbs, force=force)
        for site in sites:
            _superuser(site, creds)
        if note:
            say(note)
        _record_restored(project, run.hosts, snap, dbs)  # after the superuser, as mirror.production
        return run.record


def create_superuser(project):
    """Create or update the superuser in every app's local database from DJANGO_SUPERUSER_* (environment or .env)."""
    sites = django_apps.bind(project, _local_root(project))
    credentials = django_apps.superuser_credentials(project.variables)
    return {site.app.name: django_apps.create_superuser(site, credentials) for site in sites}


def fix_migrations(project, app_name=None, label=None, migration=None):
    """Compare each app's django_migrations with its local schema; insert the rows of migrations whose
    schema is present (or the one given), report the rest. Return {app: ['label.name' inserted]}.

    Raise ProdmirrorError (after reporting) if a migration is recorded but missing from the schema,
    or cannot be confirmed although recorded ones depend on it: those are left for a human."""
    apps = [a for a in project.mirror.apps if app_name in (None, a.name)]
    if not apps and app_name:
        raise ConfigError(f"mirror.django: no app named {app_name!r}")
    if (label is None) != (migration is None):
        raise ProdmirrorError("give --app and --migration together (the django_migrations row to insert)")
    done, problems = {}, []
    for site in django_apps.bind(project, _local_root(project), apps):
        state = django_migrations.fix(site, (label, migration) if label else None)
        lines, left = django_migrations.report(site.app.name, state)
        for line in lines:
            say(line)
        done[site.app.name] = [tuple(name.split(".", 1)) for name in state["recorded"]]
        problems += left
    if problems:
        raise ProdmirrorError(f"{len(problems)} migration problem(s) left as they are (listed above); "
                              "nothing was faked for them")
    return done


def checkpoint(project):
    """Tag the ops repo `stable-mirror-YYYYMMDD` (suffix -2, -3… when taken) with the newest snapshot's manifest."""
    snap = _snapshot(project)
    git = ["git", "-C", str(project.root)]
    if subprocess.run(git + ["rev-parse", "--is-inside-work-tree"], capture_output=True).returncode != 0:
        raise ProdmirrorError(f"{project.root} is not a git repository: cannot tag a checkpoint")
    base = f"stable-mirror-{datetime.now(timezone.utc):%Y%m%d}"
    tags = set(subprocess.run(git + ["tag", "--list", f"{base}*"], capture_output=True, text=True).stdout.split())
    tag, n = base, 2
    while tag in tags:
        tag, n = f"{base}-{n}", n + 1
    message = f"prodmirror checkpoint: snapshot {snap.name}\n\n{json.dumps(snap.manifest, indent=2)}\n"
    identity = []
    if not subprocess.run(git + ["config", "user.email"], capture_output=True, text=True).stdout.strip():
        identity = ["-c", "user.name=prodmirror", "-c", "user.email=prodmirror@localhost"]
    res = subprocess.run(["git", *identity, "-C", str(project.root), "tag", "-a", tag, "-F", "-"],
                         input=message, capture_output=True, text=True)
    if res.returncode != 0:
        raise ProdmirrorError(f"git tag {tag} failed: {res.stderr.strip()}")
    audit.write(project.state_dir, {"task": "mirror.checkpoint", "result": "ok", "tag": tag, "snapshot": snap.name})
    say(f"checkpoint {tag}: snapshot {snap.name}")
    return tag


def status(project, echo=False):
    """Return {'code': {path: parity}, 'data': {key: verdict}, 'restored': {key: snapshot restored last},
    'snapshot': newest snapshot} without changing anything. prodmirror's own localize block is no code
    difference: settings.py files are compared without it."""
    prod_code, root = _code(project)
    with Run(project, "mirror.status", echo=echo, audit=False) as run:
        host = run.hosts.for_env(project.env("production"))
        remote = code.remote_checksums(host, prod_code)
        local = code.local_checksums(root, prod_code["paths"], prod_code.get("exclude", []))
        report = {"code": {}, "data": {}, "restored": {}, "snapshot": None}
        for path in prod_code["paths"]:
            mine = {k: v for k, v in local.items() if k.split("/")[0] == path}
            theirs = {k: v for k, v in remote.items() if k.split("/")[0] == path}
            report["code"][path] = code.parity(mine, theirs)
        for app in project.mirror.apps:
            rel = posixpath.normpath(f"{app.path}/{app.settings}")
            diff = report["code"].get(rel.split("/")[0])
            if diff and rel in diff["changed"] and _same_unlocalized(host, prod_code["root"], root, rel):
                diff["changed"].remove(rel)
        snaps = backup_store.list_backups(project, project.mirror.snapshots)
        report["snapshot"] = snaps[0].name if snaps else None
        for key, snap in _restored_last(snaps, project.env("local").databases).items():
            db, expected = project.env("local").database(key), snap.manifest["restored"][key]
            current = engine_for(db).fingerprint(run.hosts.for_db(db), db)
            theirs = expected.get("tables") if isinstance(expected.get("tables"), dict) else {}
            tables = sorted(t for t in set(current["tables"]) | set(theirs) if current["tables"].get(t) != theirs.get(t))
            report["restored"][key] = snap.name
            report["data"][key] = ("matches the snapshot" if current == expected else
                                   f"differs from the snapshot in: {', '.join(tables) or 'sequences'}")
        return report


def _same_unlocalized(host, remote_root, root, rel):
    """Return True if local and production settings.py `rel` are the same text once the localize block is stripped."""
    theirs = host.run(["cat", "--", posixpath.join(remote_root, rel)], check=False)
    try:
        mine = (root / rel).read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return theirs.code == 0 and django_settings.unlocalized(mine) == django_settings.unlocalized(theirs.stdout)


def _restored_last(snaps, keys):
    """Given snapshots and the local database keys, return {key: the snapshot restored into it last}
    (manifests are untrusted input: a malformed record is passed over)."""
    last = {}
    for snap in snaps:
        restored, when = snap.manifest.get("restored"), snap.manifest.get("restored_at")
        for key, fingerprint in (restored.items() if isinstance(restored, dict) else ()):
            at = when.get(key) if isinstance(when, dict) else None
            at = at if isinstance(at, str) else snap.created  # recorded before restored_at existed
            if key in keys and isinstance(fingerprint, dict) and (key not in last or at > last[key][0]):
                last[key] = (at, snap)
    return {key: snap for key, (at, snap) in last.items()}
