"""`charrnn train DIR ...`: folders expanded into their text files (charrnn/sources.py), through
`expand` and through the CLI."""

import hashlib
import json
import os

import pytest
from cli_asserts import ok, one_line_error
from typer.testing import CliRunner

from charrnn.cli import app
from charrnn.errors import CorpusError, UsageError
from charrnn.sources import expand

TINY = ["--hidden", "12", "--layers", "1", "--batch", "2", "--seq", "8", "--threads", "1"]
TEXTS = {
    "b.txt": "the second file, at the top\n",
    "a/z.py": "print('deep')\n",
    "a/b/c.txt": "deeper still\n",
    "a.txt": "a file beside the folder a\n",
}


pytestmark = pytest.mark.usefixtures("isolated")  # in tmp_path, with a private corpus cache


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    for name, text in TEXTS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text * 20)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("hidden folder\n")
    (root / ".hidden.txt").write_text("hidden file\n")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    (root / "a" / "loop").symlink_to("..")  # back to the root: a loop
    (root / "dangling").symlink_to("nowhere")
    (root / "twin.txt").symlink_to("b.txt")  # the same file a second time: read once
    os.mkfifo(root / "pipe")  # reading it would block forever
    return root


ORDER = ["a/b/c.txt", "a/z.py", "a.txt", "b.txt"]  # sorted by path, folder by folder


def train(*args):
    return CliRunner().invoke(app, ["train", *args], catch_exceptions=False)


def test_a_folder_is_its_text_files_in_path_order(tree):
    found = expand([str(tree)])
    assert found.files == [str(tree / n) for n in ORDER]
    assert [rel for rel, _ in found.listing] == ORDER
    assert found.skipped == {
        "binary": [str(tree / "logo.png")],
        "undecodable": [str(tree / "latin1.txt")],
        "unreadable": [str(tree / "dangling")],
        "special": [str(tree / "pipe")],
    }
    assert found.links == [
        f"{tree / 'a' / 'loop'} -> {tree}",
        f"{tree / 'twin.txt'} -> {tree / 'b.txt'}",
    ]
    lines = found.warnings("ck/x-latest.npz")
    assert len(lines) == 2 and "skipped 4 file(s) under" in lines[0]
    assert "`charrnn inspect ck/x-latest.npz` lists them" in lines[0] and "loop" in lines[1]
    meta = found.meta()
    assert meta["files"] == 4 and meta["skipped"]["binary"] == 1
    assert f"{tree / 'logo.png'} (binary)" in meta["skipped_files"]


def test_glob_by_name_or_by_path_and_files_named_are_kept(tree, tmp_path):
    assert expand([str(tree)], ["*.py"]).files == [str(tree / "a/z.py")]
    assert expand([str(tree)], ["a/*.txt"]).files == [str(tree / "a/b/c.txt")]  # * crosses /
    assert expand([str(tree)], ["*.py", "b.*"]).files == [str(tree / "a/z.py"), str(tree / "b.txt")]
    (tmp_path / "x.md").write_text("named\n")
    got = expand(["x.md", str(tree), "-"], ["*.py"]).files
    assert got == ["x.md", str(tree / "a/z.py"), "-"]


def test_strict_replace_and_bytes_change_what_is_skipped(tree):
    with pytest.raises(CorpusError, match=r"tree/a/b: no file under it matches --glob .\*.md."):
        expand([str(tree / "a" / "b")], ["*.md"])  # nothing matches: the folder is named
    with pytest.raises(CorpusError, match=r"dangling: a broken symlink .*--errors strict"):
        expand([str(tree)], strict=True)
    replaced = expand([str(tree)], errors="replace")
    assert str(tree / "latin1.txt") in replaced.files and "binary" in replaced.skipped
    raw = expand([str(tree)], encoding="latin-1", as_bytes=True)
    assert str(tree / "logo.png") in raw.files and str(tree / "latin1.txt") in raw.files
    assert set(raw.skipped) == {"unreadable", "special"}


def test_undecodable_names_the_byte_in_strict_mode(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "bad.txt").write_bytes(b"ok " * 5000 + b"\xff")
    with pytest.raises(CorpusError, match="bad.txt: invalid utf-8 at byte 15000"):
        expand([str(d)], strict=True)


def test_empty_folders_and_stray_globs_are_clear(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".only-hidden").write_text("x")
    with pytest.raises(CorpusError, match="empty: no text files in it .*hidden"):
        expand(["empty"])
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(UsageError, match="--glob picks files inside folders"):
        expand(["f.txt"], ["*.py"])
    with pytest.raises(UsageError, match="relative"):
        expand(["empty"], ["/abs/*.py"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file whatever its mode")
def test_unreadable_files_are_skipped(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "ok.txt").write_text("fine\n")
    (d / "locked.txt").write_text("secret\n")
    (d / "locked.txt").chmod(0)
    assert expand([str(d)]).skipped == {"unreadable": [str(d / "locked.txt")]}


def test_cli_trains_on_the_files_in_order_and_says_what_it_skipped(tree, tmp_path):
    r = train(str(tree), *TINY, "--steps", "2", "--out", "ck", "--quiet", "--test-fraction", "0.2")
    assert r.exit_code == 0, r.stderr
    warnings = [x for x in r.stderr.splitlines() if x.startswith("charrnn: warning:")]
    assert len(warnings) == 2 and "4 file(s)" in warnings[0] and "ck/tree-latest.npz" in warnings[0]
    joined = b"".join((tree / n).read_bytes() for n in ORDER)
    info = json.loads(ok(CliRunner().invoke(app, ["inspect", "ck/tree-latest.npz", "--json"])))
    c = info["corpus"]
    assert c["sha256"] == hashlib.sha256(joined).hexdigest() and c["files"] == 4
    assert c["sources"] == [str(tree.resolve())] and c["name"] == "tree/ (4 files)"
    assert len(c["skipped_files"]) == 4 and c["skipped"]["special"] == 1
    # the test split of a folder run is found again by expanding the folder
    rec = json.loads(ok(CliRunner().invoke(app, ["eval", "-c", "ck/tree-latest.npz", "--json"])))
    assert rec["text"] == "test split of tree/ (4 files)" and rec["chars"] > 0
    # and the run resumes from the folder without naming it
    r = train(*TINY, "--steps", "3", "--quiet", "--resume", "ck/tree-latest.npz")
    assert r.exit_code == 0, r.stderr


def test_a_globbed_run_resumes_with_its_glob(tree):
    args = [*TINY, "--quiet", "--out", "ck", "--name", "py"]
    assert train(str(tree), "--glob", "*.txt", *args, "--steps", "2").exit_code == 0
    r = train(str(tree), *args, "--steps", "3", "--resume", "ck/py-latest.npz")  # same folder
    assert r.exit_code == 0, r.stderr
    r = train(*args, "--steps", "4", "--resume", "ck/py-latest.npz")  # no folder named
    assert r.exit_code == 0, r.stderr
    r = train(str(tree), "--glob", "b.*", *args, "--steps", "5", "--resume", "ck/py-latest.npz")
    assert "differs" in one_line_error(r, 2)  # another selection is another corpus


def test_the_fingerprint_covers_the_file_list(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "a.txt").write_text("one two three " * 20)
    (d / "b.txt").write_text("four five six " * 20)
    before = expand([str(d)]).meta()
    (d / "b.txt").rename(d / "c.txt")  # same bytes in the same order, another list
    after = expand([str(d)]).meta()
    assert before["files"] == after["files"] and before["list_sha256"] != after["list_sha256"]


def test_cli_strict_errors_stop_on_the_first_non_text_file(tree):
    err = one_line_error(train(str(tree), *TINY, "--steps", "1", "--errors", "strict"), 1)
    assert "dangling" in err and "--errors strict" in err
    err = one_line_error(train(str(tree), *TINY, "--steps", "1", "--glob", "*.rs"), 1)
    assert "--glob '*.rs'" in err
