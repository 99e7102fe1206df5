"""worktree: prodmirror's output kept out of the ops repo's git (a real `git init`, no servers)."""

import subprocess

from tasks import worktree


def git_init(folder):
    subprocess.run(["git", "init", "-q", str(folder)], check=True, timeout=30)


def test_a_code_root_inside_the_repo_is_excluded_once(tmp_path):
    git_init(tmp_path)
    exclude, lines = worktree.exclusions(tmp_path, [tmp_path / "mirror", tmp_path / "mirror" / "app",
                                                    tmp_path / "mirror" / "snapshots"])
    assert exclude == tmp_path / ".git" / "info" / "exclude" and lines == ["/mirror/"]
    worktree.keep_out_of_git(exclude, lines)
    (tmp_path / "mirror" / "app").mkdir(parents=True)
    (tmp_path / "mirror" / "app" / "x.py").write_text("x = 1\n")
    status = subprocess.run(["git", "-C", str(tmp_path), "status", "--porcelain"], capture_output=True, text=True,
                            timeout=30).stdout
    assert status == ""
    assert worktree.exclusions(tmp_path, [tmp_path / "mirror" / "app"]) == (exclude, [])


def test_a_code_root_that_is_the_repo_excludes_its_app_folders(tmp_path):
    git_init(tmp_path)
    _, lines = worktree.exclusions(tmp_path, [tmp_path, tmp_path / "gamit_app", tmp_path / "store_app"])
    assert lines == ["/gamit_app/", "/store_app/"]


def test_outside_a_repo_or_outside_its_tree_nothing_is_written(tmp_path):
    (tmp_path / "ops").mkdir()
    assert worktree.exclusions(tmp_path / "ops", [tmp_path / "ops" / "mirror"]) == (None, [])
    git_init(tmp_path / "ops")
    assert worktree.exclusions(tmp_path / "ops", [tmp_path / "elsewhere"])[1] == []
