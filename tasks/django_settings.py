"""settings.py of a mirrored Django app: the managed localize block prodmirror writes at its end
(DEBUG, ALLOWED_HOSTS, … and Django's default database pointed at the local one), and the text
without that block, which is what production's file is compared with."""

import re

from .errors import ProdmirrorError

BEGIN = "# >>> prodmirror localize: managed block, rewritten by `inv mirror.localize-settings` >>>"
END = "# <<< prodmirror localize <<<"
BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
# DATABASES['default'][KEY] comes from PRODMIRROR_DB_<KEY>, defaulting to the local database's value;
# the password has no default: it is never written into the file.
DB_KEYS = ("NAME", "HOST", "PORT", "USER")


def render_block(values, database=None):
    """Given {SETTING: value} and the local database as {NAME, HOST, PORT, USER} (or None), return the
    managed block (Python literals, sorted for a stable file)."""
    lines = [BEGIN] + [f"{key} = {value!r}" for key, value in sorted(values.items())]
    if database:
        lines += ["# Django's default database is local's (PRODMIRROR_DB_* override it; the password comes only from",
                  "# PRODMIRROR_DB_PASSWORD), so `manage.py runserver` or `shell` by hand reach local, not production.",
                  "import os as _prodmirror_os",
                  "DATABASES = globals().get('DATABASES') or {}",
                  "DATABASES['default'] = {**DATABASES.get('default', {'ENGINE': 'django.db.backends.postgresql'}),",
                  *[f"    {key!r}: _prodmirror_os.environ.get('PRODMIRROR_DB_{key}', {str(database[key])!r}),"
                    for key in DB_KEYS],
                  "    'PASSWORD': _prodmirror_os.environ.get('PRODMIRROR_DB_PASSWORD', '')}"]
    return "\n".join(lines + [END]) + "\n"


def unlocalized(text):
    """Given a settings.py text, return it without the managed block (and trailing blank lines)."""
    return BLOCK.sub("", text).rstrip("\n")


def localize(settings_path, values, database=None):
    """Write the managed block at the end of settings.py (replacing an earlier one). Return True if the file changed."""
    try:
        text = settings_path.read_text()
    except FileNotFoundError:
        raise ProdmirrorError(f"{settings_path}: no such settings file (check mirror.django[].settings)") from None
    block = render_block(values, database)
    body = unlocalized(text)
    new = f"{body}\n\n{block}" if body else block
    if new == text:
        return False
    settings_path.write_text(new)
    return True
