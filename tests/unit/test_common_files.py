"""vc5.common.files.replace_file: whole old or whole new, nothing left behind on failure."""

import os
import stat

import pytest

from vc5.common import files


def test_replaces_with_the_mode_asked_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "sub" / "state")
    files.replace_file(path, "one\n", durable=True, make_directory=0o755)
    assert open(path).read() == "one\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600            # default: private
    files.replace_file(path, b"two\n", mode=0o644)
    assert open(path).read() == "two\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(os.path.dirname(path)) == ["state"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = str(tmp_path / "state")
    files.replace_file(path, "old")
    with pytest.raises(TypeError):
        files.replace_file(path, 42)                                  # not bytes: the write fails
    assert open(path).read() == "old"
    assert os.listdir(tmp_path) == ["state"]
