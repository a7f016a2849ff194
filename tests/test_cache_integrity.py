"""A corpus cache entry proves itself (charrnn/integrity.py): damage of any kind to any of its
files is found, warned about once and repaired by rebuilding from the source; the reader is
fuzzed as the checkpoint loader is; a sound entry is not read in full on every start."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_checkpoint_fuzz import _apply, edits
from typer.testing import CliRunner

import charrnn.corpus as C
from charrnn import integrity
from charrnn.cli import app
from charrnn.data import load_corpus
from charrnn.errors import CharrnnWarning

FUZZ = settings(
    max_examples=int(os.environ.get("CHARRNN_FUZZ_EXAMPLES", "150")),
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TEXT = "naïve café 😀 déjà vu\n" * 40  # uint16 ids: a flipped bit can stay in range


def load(path: Path, cache: Path):
    """load_corpus, and the CharrnnWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = load_corpus([str(path)], cache_dir=cache)
    return corpus, [str(w.message) for w in caught if issubclass(w.category, CharrnnWarning)]


def entry(cache: Path) -> dict[str, Path]:
    (meta,) = [p for p in cache.glob("*.json") if p.name != "index.json"]
    key = meta.name[: -len(".json")]
    return {"ids": cache / f"{key}.ids.npy", "vocab": cache / f"{key}.vocab.npy", "meta": meta}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A source file and the cache entry built from it, to copy for each example."""
    d = tmp_path_factory.mktemp("pristine")
    source = d / "corpus.txt"
    source.write_text(TEXT, encoding="utf-8")
    corpus, caught = load(source, d / "cache")
    assert not caught
    return source, d / "cache", corpus.ids.tolist(), corpus.vocab.codepoints.tolist()


def check_sound(corpus, pristine) -> None:
    _, _, ids, codepoints = pristine
    assert corpus.ids.tolist() == ids and corpus.vocab.codepoints.tolist() == codepoints
    assert corpus.text() == TEXT


@FUZZ
@given(
    part=st.sampled_from(["ids", "vocab", "meta"]),
    damage=edits | st.binary(max_size=400),  # byte edits, or the file replaced by any bytes
)
def test_damaged_entry_is_found_warned_and_rebuilt(pristine, part, damage):
    source, built, _, _ = pristine
    with tempfile.TemporaryDirectory() as d:
        cache = Path(d) / "cache"
        shutil.copytree(built, cache)
        files = entry(cache)
        before = files[part].read_bytes()
        after = damage if isinstance(damage, bytes) else _apply(before, damage)
        files[part].write_bytes(after)
        corpus, caught = load(source, cache)
        check_sound(corpus, pristine)  # whatever happened, the corpus is the user's
        assert len(caught) <= 1
        if caught:
            assert "is damaged" in caught[0] and "rebuilding it from the source" in caught[0]
        elif part == "meta":  # only a change that means nothing may pass unseen
            assert json.loads(after.decode("utf-8")) == json.loads(before)
        else:
            assert after == before
        del corpus
        corpus, caught = load(source, cache)  # repaired: no second warning
        check_sound(corpus, pristine)
        assert not caught


def test_each_kind_of_damage_is_named(pristine, tmp_path):
    source, built, _, _ = pristine
    cases = {
        "its ids do not match their checksum": lambda f: _flip(f["ids"], -3),
        "its vocabulary does not match its checksum": lambda f: _flip(f["vocab"], -1),
        "its metadata does not match its checksum": lambda f: _edit_meta(f["meta"], chars=5),
        "its metadata is unreadable": lambda f: f["meta"].write_text("{cut sh"),
        "cannot be read": lambda f: f["ids"].unlink(),
    }
    for i, (phrase, damage) in enumerate(cases.items()):
        cache = tmp_path / f"c{i}"
        shutil.copytree(built, cache)
        damage(entry(cache))
        corpus, caught = load(source, cache)
        check_sound(corpus, pristine)
        assert len(caught) == 1 and phrase in caught[0], (phrase, caught)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _edit_meta(path: Path, **changes) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def test_a_sound_entry_is_read_in_full_only_until_its_stamp_is_recorded(
    pristine, tmp_path, monkeypatch
):
    source, built, _, _ = pristine
    cache = tmp_path / "cache"
    shutil.copytree(built, cache)  # a copy: new inodes and times, so it is verified once
    reads = []
    real = integrity.digest
    monkeypatch.setattr(integrity, "digest", lambda p, *a: reads.append(Path(p).name) or real(p))
    monkeypatch.setattr(integrity, "RACY_NS", 0)  # let the stamp be trusted at once
    files = entry(cache)
    for expected in (True, False, False):
        reads.clear()
        corpus, caught = load(source, cache)
        check_sound(corpus, pristine)
        assert not caught
        assert (files["ids"].name in reads) == expected, reads
    assert json.loads(files["meta"].read_text())["ids_stamp"] is not None
    files["ids"].write_bytes(files["ids"].read_bytes())  # rewritten, same bytes: checked again
    os.utime(files["ids"], ns=(1, 1))
    reads.clear()
    corpus, caught = load(source, cache)
    assert files["ids"].name in reads and not caught


def test_a_fresh_stamp_is_not_trusted(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x")
    assert integrity.stamp(f) is None  # written just now: a write in this tick could hide
    os.utime(f, ns=(10**18, 10**18))
    assert integrity.stamp(f) is None  # ctime is still now


def test_a_damaged_index_cannot_hand_over_another_corpus(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("alpha text\n" * 10)
    b.write_text("bravo words\n" * 10)
    for p in (a, b):
        os.utime(p, ns=(1_600_000_000_000_000_000,) * 2)  # old: recorded in the index
    cache = tmp_path / "cache"
    ca, cb = load_corpus([str(a)], cache_dir=cache), load_corpus([str(b)], cache_dir=cache)
    index = json.loads((cache / "index.json").read_text())
    ka = next(k for k in index["entries"] if "a.txt" in k)
    kb = next(k for k in index["entries"] if "b.txt" in k)
    index["entries"][ka]["key"] = index["entries"][kb]["key"]  # a's record points at b's entry
    (cache / "index.json").write_text(json.dumps(index))
    assert load_corpus([str(a)], cache_dir=cache).text() == ca.text() != cb.text()


def test_cli_says_it_once_and_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    argv = ["train", str(corpus), "--hidden", "8", "--layers", "1", "--batch", "2", "--seq",
            "8", "--steps", "2", "--quiet", "--threads", "1", "--out", str(tmp_path / "ck"),
            "--force"]  # fmt: skip
    assert CliRunner().invoke(app, argv).exit_code == 0
    ids = entry(tmp_path / "cache" / "corpus")["ids"]
    data = bytearray(ids.read_bytes())
    data[200] ^= 0x01  # an id changed on disk, still a valid id
    ids.write_bytes(bytes(data))
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(lines) == 1 and lines[0].startswith("charrnn: warning: the cached encoding of c.txt")


def test_devices_are_refused_and_debris_is_swept(tmp_path):
    from charrnn.errors import CorpusError

    # /dev/zero would never end; /dev/null is refused the same way, and is safe to test with
    with pytest.raises(CorpusError, match="/dev/null: is a device, not a text file"):
        load_corpus(["/dev/null"], cache_dir=tmp_path / "cache")
    cache = tmp_path / "cache"
    cache.mkdir()
    spool = cache / ".spool-abc.txt"  # a killed run's copy of stdin
    spool.write_bytes(b"x" * 1000)
    os.utime(spool, (1, 1))
    f = tmp_path / "t.txt"
    f.write_text("text\n")
    load_corpus([str(f)], cache_dir=cache)
    assert not spool.exists()
    assert np.array_equal(load_corpus([str(f)], cache_dir=cache).ids, [2, 1, 3, 2, 0])
    assert ".spool-*" in C.DEBRIS


def test_running_out_of_file_descriptors_is_not_damage(pristine, tmp_path, monkeypatch):
    """Too many open files while opening a sound entry: one error line saying what to do, and
    the entry is left as it is (no warning, nothing deleted)."""
    import errno

    from charrnn.errors import CorpusError

    source, built, _, _ = pristine
    cache = tmp_path / "cache"
    shutil.copytree(built, cache)
    before = sorted(p.name for p in cache.iterdir())

    def no_fds(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(integrity, "digest", no_fds)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CharrnnWarning)
        with pytest.raises(CorpusError, match=r"open files: raise the limit \(ulimit -n\)"):
            load_corpus([str(source)], cache_dir=cache)
    assert sorted(p.name for p in cache.iterdir()) == before
