"""MongoDB end to end: the seed 001 scenarios against a real mongod with the real Database Tools.

No MongoDB server or Database Tools package can be installed on this project's machines (Debian's
registry has none), so this tier runs only where mongod, mongodump and mongorestore are on PATH, and
skips with that reason otherwise, in CI too. It never simulates a server.
"""

import os
import shutil
import subprocess
import time

import bcrypt
import pytest

from tasks import audit, config
from tasks.actions import backup, sync
from tasks.errors import GuardError

TOOLS = ("mongod", "mongodump", "mongorestore")
pytestmark = pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS),
    reason="MongoDB end-to-end tier: mongod, mongodump and mongorestore are not on PATH "
           "(no MongoDB server or Database Tools package is reachable from this machine)")


@pytest.fixture(scope="module")
def mongod(tmp_path_factory):
    from tasks.sandbox import free_port

    port, data = free_port(), tmp_path_factory.mktemp("mongod")
    proc = subprocess.Popen(["mongod", "--dbpath", str(data), "--port", str(port), "--bind_ip", "127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import pymongo

    uri = f"mongodb://127.0.0.1:{port}"
    for _ in range(100):
        try:
            pymongo.MongoClient(uri, serverSelectionTimeoutMS=300).admin.command("ping")
            break
        except Exception:
            time.sleep(0.2)
    yield uri
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def ecm(mongod, tmp_path):
    import gridfs
    import pymongo

    client = pymongo.MongoClient(mongod)
    prod = client["ecm_production"]
    prod.users.insert_many([{"email": f"user{i}@example.com", "name": f"User {i}"} for i in range(50)])
    prod.templates.insert_one({"name": "contract", "body": "…"})
    gridfs.GridFS(prod).put(os.urandom(300_000), filename="scan.pdf")
    cfg = {"environments": {
        "production": {"databases": {"ecm": {"engine": "mongo", "uri": f"{mongod}/ecm_production"}}},
        "local": {"databases": {"ecm": {"engine": "mongo", "uri": f"{mongod}/ecm_development", "after_sync": {
            "reset_passwords": {"collection": "users", "match": "email", "users": ["user1@example.com"],
                                "field": "password_digest", "scheme": "bcrypt", "password": "${MONGO_RESET_PW}"}}}}}}}
    os.environ["MONGO_RESET_PW"] = "local only secret"
    yield config.load(cfg, tmp_path), client
    client.drop_database("ecm_production")
    client.drop_database("ecm_development")


def test_pull_push_drift_collection_and_restore(ecm):
    project, client = ecm
    rec = sync.copy(project, "production", "local", task="db.sync.from-production")
    dev, prod = client["ecm_development"], client["ecm_production"]
    assert dev.users.count_documents({}) == 50 and dev["fs.chunks"].count_documents({}) == prod["fs.chunks"].count_documents({})
    stored = dev.users.find_one({"email": "user1@example.com"})["password_digest"]
    assert bcrypt.checkpw(b"local only secret", stored.encode()) and rec["after_sync"]["ecm"]["reset_passwords"]["reset"] == 1

    prod.users.update_one({"email": "user7@example.com"}, {"$set": {"name": "edited in production"}})
    with pytest.raises(GuardError, match="users"):
        os.environ["FORCE"] = ""
        sync.copy(project, "local", "production", force=False)
    sync.copy_object(project, "production", "local", "users")
    assert dev.users.find_one({"email": "user7@example.com"})["name"] == "edited in production"

    dev.templates.update_one({}, {"$set": {"body": "new"}})
    sync.copy_object(project, "local", "production", "templates", force=True)
    assert prod.templates.find_one()["body"] == "new"

    taken = backup.backup(project, "local")
    dev.users.delete_many({})
    backup.restore_backup(project, taken.name, "local")
    assert dev.users.count_documents({}) == 50
    assert audit.read(project.state_dir)[-1]["result"] == "ok"
