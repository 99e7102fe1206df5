"""errors.last_line: the line of a command's stderr that says why it failed."""

from tasks.errors import CommandError, last_line


def test_tar_names_the_file_not_its_summary():
    stderr = ("tar: gamit_app/secret.txt: Cannot open: Permission denied\n"
              "tar: Exiting with failure status due to previous errors\n")
    assert last_line(stderr) == "tar: gamit_app/secret.txt: Cannot open: Permission denied"
    assert str(CommandError("production", ["tar"], 2, stderr)) == \
        "production: tar failed (exit 2): tar: gamit_app/secret.txt: Cannot open: Permission denied"


def test_a_cause_without_a_telling_word_still_beats_the_summary():
    stderr = "tar: gamit_app/log.txt: file changed as we read it\ntar: Exiting with failure status due to previous errors\n"
    assert last_line(stderr) == "tar: gamit_app/log.txt: file changed as we read it"


def test_other_summaries_give_way_to_the_cause():
    assert last_line("rsync: send_files failed to open \"/a/b\": Permission denied (13)\n"
                     "rsync error: some files/attrs were not transferred (see previous errors) (code 23)\n") == \
        'rsync: send_files failed to open "/a/b": Permission denied (13)'
    assert last_line("pg_restore: error: could not execute query: ERROR:  relation \"x\" already exists\n"
                     "Command was: CREATE TABLE x ();\npg_restore: warning: errors ignored on restore: 1\n") == \
        'pg_restore: error: could not execute query: ERROR:  relation "x" already exists'


def test_the_detail_after_an_error_and_a_lone_summary_are_kept_as_before():
    assert last_line("psql: error: connection failed: FATAL:  role \"x\" does not exist\nDETAIL: none\n") == \
        'psql: error: connection failed: FATAL:  role "x" does not exist'
    assert last_line("tar: Exiting with failure status due to previous errors\n") == \
        "tar: Exiting with failure status due to previous errors"
    assert last_line("something odd\n") == "something odd" and last_line("") == ""
