"""The backup store's checks that need no database: backup names."""

import pytest

from tasks import backup_store
from tasks.errors import BackupError


@pytest.mark.parametrize("name", ["../etc", "a/b", ".hidden", "", "x/../../y"])
def test_bad_backup_names_are_rejected(name, tmp_path):
    with pytest.raises(BackupError, match="invalid backup name"):
        backup_store.check_name(name)
