"""Build a real Django 5.2 project the way a team's production server holds it: `startproject`, an app
with models and two migrations, static files and media, and settings that point at production's
database unless PM_DB_NAME/PM_DB_PORT say otherwise (as a real project's settings or .env do),
migrated into a PostgreSQL database with some rows."""

import os
import subprocess
import sys
from pathlib import Path

MODELS = '''from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=80, unique=True)


class Item(models.Model):
    name = models.CharField(max_length=120)
    category = models.ForeignKey(Category, on_delete=models.PROTECT)
    qty = models.IntegerField(default=0)
'''

MIGRATION_1 = '''from django.db import migrations, models
import django.db.models.deletion


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(name="Category", fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("name", models.CharField(max_length=80, unique=True))]),
        migrations.CreateModel(name="Item", fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("name", models.CharField(max_length=120)),
            ("category", models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, to="inventory.category"))]),
    ]
'''

MIGRATION_2 = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]
    operations = [migrations.AddField(model_name="item", name="qty", field=models.IntegerField(default=0))]
'''

SETTINGS_TAIL = '''
INSTALLED_APPS += ["inventory"]
DATABASES = {"default": {
    "ENGINE": "django.db.backends.postgresql", "NAME": os.environ.get("PM_DB_NAME", "{name}"), "USER": "spmo_admin",
    "HOST": "127.0.0.1", "PORT": os.environ.get("PM_DB_PORT", "{port}")}}
DEBUG = False
ALLOWED_HOSTS = ["app.example.com"]
CSRF_TRUSTED_ORIGINS = ["https://app.example.com"]
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_ROOT = BASE_DIR / "media"
'''


def build(code_root, db_name, db_port, python=sys.executable):
    """Create code_root/gamit_app (project gamit_core, app inventory) whose settings point at database
    db_name on 127.0.0.1:db_port (production's); return the app folder."""
    app_dir = Path(code_root) / "gamit_app"
    app_dir.mkdir(parents=True)
    subprocess.run([python, "-m", "django", "startproject", "gamit_core", str(app_dir)], check=True, timeout=60)
    subprocess.run([python, "manage.py", "startapp", "inventory"], cwd=app_dir, check=True, timeout=60)
    inv = app_dir / "inventory"
    (inv / "models.py").write_text(MODELS)
    (inv / "migrations" / "0001_initial.py").write_text(MIGRATION_1)
    (inv / "migrations" / "0002_item_qty.py").write_text(MIGRATION_2)
    (inv / "static" / "inventory").mkdir(parents=True)
    (inv / "static" / "inventory" / "site.css").write_text("body { color: #123456; }\n")
    (app_dir / "media" / "uploads").mkdir(parents=True)
    (app_dir / "media" / "uploads" / "photo.bin").write_bytes(os.urandom(200_000))
    settings = app_dir / "gamit_core" / "settings.py"
    tail = SETTINGS_TAIL.replace("{name}", db_name).replace("{port}", str(db_port))
    settings.write_text("import os\n" + settings.read_text() + tail)
    for folder, dirs, files in os.walk(code_root):  # the SSH user reads it like a deploy user would
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return app_dir


def migrate(app_dir, db_name, port, python=sys.executable):
    """Run the real migrations against database db_name on 127.0.0.1:port and add a few rows."""
    env = {**os.environ, "PM_DB_NAME": db_name, "PM_DB_PORT": str(port)}
    subprocess.run([python, "manage.py", "migrate", "--verbosity", "0"], cwd=app_dir, env=env, check=True, timeout=120)
    subprocess.run([python, "manage.py", "shell", "-c",
                    "from inventory.models import Category, Item\n"
                    "c = Category.objects.create(name='paper')\n"
                    "[Item.objects.create(name=f'ream {i}', category=c, qty=i) for i in range(25)]"],
                   cwd=app_dir, env=env, check=True, timeout=60)
