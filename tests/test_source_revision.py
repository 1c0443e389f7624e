"""results.json records the git commit of the disbench checkout that trained the run."""

import shutil
import subprocess
from pathlib import Path

import pytest

from disbench.runs import checkout_revision, environment, source_revision

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.py").write_text("x = 1\n")
    git(repo, "add", "a.py")
    git(repo, "commit", "-q", "-m", "first")
    return repo


def test_clean_checkout_gives_its_commit(repo):
    assert checkout_revision(repo) == {"commit": git(repo, "rev-parse", "HEAD"), "dirty": False}


def test_changed_tracked_file_is_dirty_untracked_file_is_not(repo):
    (repo / "notes.txt").write_text("untracked\n")
    assert checkout_revision(repo)["dirty"] is False
    (repo / "a.py").write_text("x = 2\n")
    assert checkout_revision(repo)["dirty"] is True


def test_folder_inside_another_repository_is_not_a_checkout(repo, tmp_path):
    inner = repo / "site-packages"
    inner.mkdir()
    assert checkout_revision(inner) is None
    assert checkout_revision(tmp_path) is None  # no repository at all


def test_environment_records_the_revision_when_there_is_one():
    source = source_revision()
    root = Path(__file__).resolve().parent.parent
    if source is None:  # an installed, non-checkout copy of disbench
        assert "source" not in environment()
    else:
        assert environment()["source"] == source
        assert source["commit"] == git(root, "rev-parse", "HEAD")
