"""The corpus reader under hostile input: random bytes, arbitrary text at every chunk size, pipes,
files that change under it, and a bounded cache index. References are one-shot bytes.decode."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import charrnn.corpus as corpus_mod
from charrnn.data import load_corpus
from charrnn.errors import CorpusError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that are mostly UTF-8-ish: pieces of valid sequences, lone lead and continuation bytes,
# BOMs and plain ASCII, so that boundaries and errors are hit often.
PIECES = st.sampled_from(
    [
        b"a",
        b"\n",
        b"\r\n",
        b"\x00",
        b"\xef\xbb\xbf",
        "é".encode(),
        "€".encode(),
        "😀".encode(),
        b"\x80",
        b"\xc3",
        b"\xe2\x82",
        b"\xf0\x9f\x98",
        b"\xff",
        b"\xed\xa0\x80",
    ]
)
RAW = st.one_of(st.binary(max_size=64), st.lists(PIECES, max_size=24).map(b"".join))


def load_bytes(data: bytes, chunk: int, errors: str):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "r.bin"
        f.write_bytes(data)
        c = load_corpus([str(f)], errors=errors, cache_dir=Path(d) / "cache", chunk_bytes=chunk)
        return c.text(), c.ids.tolist(), c.vocab.codepoints.tolist()


def expected_text(data: bytes, errors: str) -> str:
    text = data.decode("utf-8", errors)
    return text[1:] if text.startswith("\ufeff") else text


def reference_ids(text: str):
    chars = sorted(set(text))
    return [chars.index(c) for c in text], [ord(c) for c in chars]


@SETTINGS
@given(data=RAW, chunk=st.integers(1, 9), errors=st.sampled_from(["replace", "ignore"]))
def test_lenient_reader_on_random_bytes(data, chunk, errors):
    text = expected_text(data, errors)
    if not text:
        with pytest.raises(CorpusError, match="the corpus is empty"):
            load_bytes(data, chunk, errors)
        return
    got_text, ids, cps = load_bytes(data, chunk, errors)
    assert got_text == text
    assert (ids, cps) == reference_ids(text)


@SETTINGS
@given(data=RAW, chunk=st.integers(1, 9))
def test_strict_reader_raises_only_corpus_error_with_the_right_offset(data, chunk):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        with pytest.raises(CorpusError, match=rf": invalid UTF-8 at byte {e.start} \("):
            load_bytes(data, chunk, "strict")
        return
    text = text[1:] if text.startswith("\ufeff") else text
    if not text:
        with pytest.raises(CorpusError, match="the corpus is empty"):
            load_bytes(data, chunk, "strict")
        return
    got_text, ids, cps = load_bytes(data, chunk, "strict")
    assert got_text == text and (ids, cps) == reference_ids(text)


@SETTINGS
@given(
    text=st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=80),
    chunk=st.integers(1, 13),
)
def test_any_text_round_trips(text, chunk):
    expected = text[1:] if text.startswith("\ufeff") else text
    if not expected:
        return
    got_text, ids, cps = load_bytes(text.encode("utf-8"), chunk, "strict")
    assert got_text == expected and (ids, cps) == reference_ids(expected)


def test_every_chunk_size_gives_the_same_ids(tmp_path):
    text = "\ufeff" + "a😀b€c\r\néd\x00" * 7
    f = tmp_path / "t.txt"
    f.write_text(text, encoding="utf-8")
    want, _ = reference_ids(text[1:])
    for chunk in range(1, 2 * len(text.encode())):
        c = load_corpus([str(f)], cache_dir=tmp_path / f"cache{chunk}", chunk_bytes=chunk)
        assert c.ids.tolist() == want, chunk


def test_named_pipe_is_spooled(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = "through a pipe 🐍\n" * 100

    def writer():
        with open(fifo, "wb") as w:
            w.write(text.encode())

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    c = load_corpus([str(fifo)], cache_dir=tmp_path / "cache", chunk_bytes=100)
    t.join(timeout=10)
    assert c.text() == text and c.name == "pipe"
    assert not list((tmp_path / "cache").glob(".spool-*"))


def test_file_changing_between_passes_is_refused(tmp_path, monkeypatch):
    f = tmp_path / "moving.txt"
    f.write_text("original text\n")
    real_scan = corpus_mod._scan

    def scan_then_edit(*args, **kwargs):
        result = real_scan(*args, **kwargs)
        f.write_text("edited!! text\n")  # same size, other bytes
        return result

    monkeypatch.setattr(corpus_mod, "_scan", scan_then_edit)
    with pytest.raises(CorpusError, match="changed while it was read"):
        load_corpus([str(f)], cache_dir=tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name != "index.json"]
    monkeypatch.setattr(corpus_mod, "_scan", real_scan)
    assert load_corpus([str(f)], cache_dir=tmp_path / "cache").text() == "edited!! text\n"


@pytest.mark.parametrize("after", ["_hash_sources", "_scan"])
def test_file_growing_between_passes_is_refused(tmp_path, monkeypatch, after):
    f = tmp_path / "growing.txt"
    f.write_text("abc\n")
    real = getattr(corpus_mod, after)

    def then_append(*args, **kwargs):
        result = real(*args, **kwargs)
        f.write_text("abc\nabc\nabc\n")
        return result

    monkeypatch.setattr(corpus_mod, after, then_append)
    with pytest.raises(CorpusError, match="changed while it was read"):
        load_corpus([str(f)], cache_dir=tmp_path / "cache", chunk_bytes=2)


def index_entries(cache: Path) -> dict:
    path = cache / "index.json"
    return json.loads(path.read_text())["entries"] if path.exists() else {}


def test_index_skips_fresh_files_and_stays_bounded(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fresh = tmp_path / "fresh.txt"
    fresh.write_text("just written\n")
    load_corpus([str(fresh)], cache_dir=cache)
    assert index_entries(cache) == {}  # its mtime could be shared by a same-size rewrite

    monkeypatch.setattr(corpus_mod, "INDEX_ENTRIES", 3)
    for i in range(5):
        f = tmp_path / f"old{i}.txt"
        f.write_text(f"old file {i}\n")
        os.utime(f, ns=(1_500_000_000_000_000_000 + i,) * 2)
        load_corpus([str(f)], cache_dir=cache)
    entries = index_entries(cache)
    assert len(entries) == 3
    assert all(f"old{i}.txt" in "".join(entries) for i in (2, 3, 4))


def test_many_sources_get_a_short_name(tmp_path):
    files = []
    for i in range(6):
        files.append(tmp_path / f"f{i}.txt")
        files[-1].write_text(f"{i}")
    c = load_corpus([str(f) for f in files], cache_dir=tmp_path / "cache")
    assert c.name == "f0.txt+f1.txt+f2.txt+3 more"
    assert c.text() == "012345" and c.fingerprint["name"] == c.name


def test_symlink_is_followed(tmp_path):
    target = tmp_path / "real.txt"
    target.write_text("linked\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert load_corpus([str(link)], cache_dir=tmp_path / "cache").text() == "linked\n"


def test_nul_only_corpus(tmp_path):
    f = tmp_path / "nul.bin"
    f.write_bytes(b"\x00" * 5)
    c = load_corpus([str(f)], cache_dir=tmp_path / "cache")
    assert c.vocab.codepoints.tolist() == [0] and np.array_equal(c.ids, np.zeros(5))
