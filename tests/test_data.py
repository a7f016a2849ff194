"""charrnn.data / charrnn.corpus: reading, encoding, caching, splits and batches, checked against
plain-Python references (one-shot bytes.decode, sorted(set(text)), explicit index loops)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys

import numpy as np
import pytest

import charrnn.corpus as corpus_mod
from charrnn.data import (
    Batches,
    default_corpus_path,
    fit_batch,
    iter_chunks,
    load_corpus,
    split_ids,
)
from charrnn.errors import CharrnnWarning, CorpusError, UsageError


def reference_ids(text: str) -> tuple[list[int], list[int]]:
    """The vocabulary (sorted code points) and the ids of `text`, the slow obvious way."""
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    return [ord(c) for c in chars], [index[c] for c in text]


def write(path, data: bytes | str):
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def load(paths, cache, **kw):
    return load_corpus([str(p) for p in paths], cache_dir=cache, **kw)


def assert_corpus_is(corpus, text: str):
    cps, ids = reference_ids(text)
    assert corpus.vocab.codepoints.tolist() == cps
    assert corpus.ids.tolist() == ids
    assert corpus.text() == text
    assert corpus.fingerprint["chars"] == len(text) == len(corpus)


# ------------------------------------------------------------------ reading and encoding

TEXTS = {
    "ascii": "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "cjk": "天地玄黃，宇宙洪荒。日月盈昃，辰宿列張。\n",
    "emoji": "I 🖤 🐍 and 👩‍💻 (a ZWJ sequence is several code points)\n",
    "mixed": "naïve café — Ωmega ∑ 漢字 😀 tab\there\n",
}


@pytest.mark.parametrize("kind", sorted(TEXTS))
@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 22])
def test_round_trip(tmp_path, cache, kind, chunk):
    text = TEXTS[kind]
    f = write(tmp_path / "c.txt", text)
    c = load([f], cache, chunk_bytes=chunk)
    assert_corpus_is(c, text)
    assert c.name == "c.txt" and c.sources == [str(f)]
    assert c.fingerprint == {
        "name": "c.txt",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "chars": len(text),
        "bytes": len(text.encode()),
    }
    assert isinstance(c.ids, np.memmap) and not c.ids.flags.writeable


def test_dtype_widths(tmp_path, cache):
    small = "".join(chr(c) for c in range(32, 32 + 256))  # 256 symbols: still uint8
    cjk = "".join(chr(c) for c in range(0x4E00, 0x4E00 + 10_500))  # 10,500 symbols
    huge = "".join(chr(c) for c in range(0x20000, 0x20000 + 65_537))  # 65,537 symbols
    for text, dtype in ((small, np.uint8), (cjk, np.uint16), (huge, np.uint32)):
        f = write(tmp_path / f"{dtype.__name__}.txt", text)
        c = load([f], cache, chunk_bytes=50_000)
        assert c.ids.dtype == dtype and len(c.vocab) == len(set(text))
        assert_corpus_is(c, text)


def test_several_files_concatenate_in_order(tmp_path, cache):
    parts = ["alpha\n", "βeta\n", "gamma 🐍\n"]
    files = [write(tmp_path / f"{i}.txt", p) for i, p in enumerate(parts)]
    c = load([files[2], files[0], files[1]], cache)
    text = parts[2] + parts[0] + parts[1]
    assert_corpus_is(c, text)
    assert c.name == "2.txt+0.txt+1.txt"
    assert c.fingerprint["sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_stdin(tmp_path, cache, monkeypatch):
    text = "from stdin: ünïcode 漢\n" * 50
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    c = load_corpus(["-"], cache_dir=cache, chunk_bytes=64)
    assert_corpus_is(c, text)
    assert c.name == "<stdin>" and c.sources == ["-"]
    assert not list(cache.glob(".spool-*")), "the stdin spool file was left behind"


def test_stdin_between_files(tmp_path, cache, monkeypatch):
    a, b = write(tmp_path / "a.txt", "A file\n"), write(tmp_path / "b.txt", "B file\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"piped\n")))
    c = load([a, "-", b], cache)
    assert_corpus_is(c, "A file\npiped\nB file\n")
    assert c.name == "a.txt+<stdin>+b.txt"


def test_stdin_twice_is_a_usage_error(cache):
    with pytest.raises(UsageError, match="only once"):
        load_corpus(["-", "-"], cache_dir=cache)


def test_empty_stdin(cache, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    with pytest.raises(CorpusError, match=r"^<stdin>: the corpus is empty"):
        load_corpus(["-"], cache_dir=cache)


@pytest.mark.parametrize("chunk", [1, 2, 3, 4096])
def test_bom_stripped_per_file_crlf_and_nul_kept(tmp_path, cache, chunk):
    bom = b"\xef\xbb\xbf"
    a = write(tmp_path / "a.txt", bom + b"line one\r\nnul:\x00.\r\n")
    b = write(tmp_path / "b.txt", bom + "second \ufeff inner BOM kept\n".encode())
    c = load([a, b], cache, chunk_bytes=chunk)
    assert_corpus_is(c, "line one\r\nnul:\x00.\r\nsecond \ufeff inner BOM kept\n")
    assert "\r" in c.vocab.chars and "\x00" in c.vocab.chars
    assert c.fingerprint["bytes"] == a.stat().st_size + b.stat().st_size


def test_only_a_bom_is_empty(tmp_path, cache):
    f = write(tmp_path / "bom.txt", b"\xef\xbb\xbf")
    with pytest.raises(CorpusError, match=r"^bom.txt: the corpus is empty"):
        load([f], cache)


def test_empty_file(tmp_path, cache):
    f = write(tmp_path / "empty.txt", b"")
    with pytest.raises(CorpusError, match=r"^empty.txt: the corpus is empty"):
        load([f], cache)


def test_only_newlines_and_single_symbol_load(tmp_path, cache):
    f = write(tmp_path / "nl.txt", "\n" * 10)
    c = load([f], cache)
    assert len(c.vocab) == 1 and c.ids.tolist() == [0] * 10


def bad_utf8_cases():
    """(data, offset of the first bad byte) built by hand, checked against bytes.decode below."""
    euro = "€".encode()  # 3 bytes
    yield b"abc\xffdef", 3
    yield b"x" * 5000 + b"\x80" + b"y", 5000  # beyond the first chunk
    yield b"x" * 4999 + euro[:2] + b"z" + b"tail", 4999  # sequence broken across a boundary
    yield b"x" * 10 + euro + euro[:2], 13  # truncated at the end of the file
    yield b"\xef\xbb\xbfok\xc3", 5  # offset counts the BOM bytes


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 1000, 4096, 1 << 22])
@pytest.mark.parametrize("case", list(bad_utf8_cases()), ids=lambda c: str(c[1]))
def test_invalid_utf8_names_file_and_byte_offset(tmp_path, cache, chunk, case):
    data, offset = case
    with pytest.raises(UnicodeDecodeError) as ref:
        data.decode("utf-8")
    assert ref.value.start == offset  # the hand-made offset agrees with Python's decoder
    f = write(tmp_path / "corpus.txt", data)
    with pytest.raises(CorpusError) as e:
        load([f], cache, chunk_bytes=chunk)
    msg = str(e.value)
    assert msg.startswith(f"{f}: invalid UTF-8 at byte {offset} (")
    assert "--errors replace" in msg and "\n" not in msg


def test_invalid_utf8_in_second_file_names_that_file(tmp_path, cache):
    a = write(tmp_path / "good.txt", "fine\n" * 100)
    b = write(tmp_path / "bad.txt", b"ok\xfe")
    with pytest.raises(CorpusError, match=r"^.*bad.txt: invalid UTF-8 at byte 2 "):
        load([a, b], cache, chunk_bytes=16)


@pytest.mark.parametrize("chunk", [1, 2, 5, 4096])
def test_errors_replace_matches_one_shot_decode(tmp_path, cache, chunk):
    data = b"caf\xc3\xa9 \xff\xfe broken \xe2\x82 end \xf0\x9f\x98"
    f = write(tmp_path / "r.txt", data)
    c = load([f], cache, errors="replace", chunk_bytes=chunk)
    assert_corpus_is(c, data.decode("utf-8", "replace"))


def test_other_encoding(tmp_path, cache):
    text = "façade naïve\n"
    f = write(tmp_path / "l1.txt", text.encode("latin-1"))
    assert_corpus_is(load([f], cache, encoding="latin-1"), text)
    with pytest.raises(CorpusError, match="invalid UTF-8 at byte 2 "):
        load([f], cache)
    with pytest.raises(CorpusError, match="invalid ascii at byte 2 "):
        load([f], cache, encoding="ascii", chunk_bytes=1)


def test_bad_settings_are_usage_errors(tmp_path, cache):
    f = write(tmp_path / "a.txt", "abc")
    with pytest.raises(UsageError, match="unknown encoding"):
        load([f], cache, encoding="no-such-codec")
    with pytest.raises(UsageError, match="not a text encoding"):
        load([f], cache, encoding="base64")
    with pytest.raises(UsageError, match="unknown errors mode"):
        load([f], cache, errors="surrogateescape")


def test_missing_and_directory(tmp_path, cache):
    with pytest.raises(CorpusError, match=r"nope.txt: no such file"):
        load([tmp_path / "nope.txt"], cache)
    with pytest.raises(CorpusError, match=r"is a directory"):
        load([tmp_path], cache)


def test_unreadable_file_via_patched_open(tmp_path, cache, monkeypatch):
    """We run as root, where chmod 000 does not stop reads: make open() refuse instead."""
    f = write(tmp_path / "secret.txt", "text")
    real_open = open

    def refusing_open(path, *args, **kwargs):
        if str(path) == str(f):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(corpus_mod, "open", refusing_open, raising=False)
    with pytest.raises(CorpusError, match=r"secret.txt: permission denied"):
        load([f], cache)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file_via_chmod(tmp_path, cache):
    f = write(tmp_path / "secret.txt", "text")
    f.chmod(0)
    with pytest.raises(CorpusError, match=r"secret.txt: permission denied"):
        load([f], cache)


def test_default_corpus_path_is_the_bundled_corpus():
    p = default_corpus_path()
    assert p.name == "shakespeare.txt" and p.is_file()
    assert p.stat().st_size == 1_036_491  # corpora/README.md


def test_no_sources_loads_the_bundled_corpus(cache):
    c = load_corpus([], cache_dir=cache)
    assert c.name == "shakespeare.txt" and len(c) == 1_036_491 and len(c.vocab) == 76


# ------------------------------------------------------------------ the cache


def count_calls(monkeypatch, name: str) -> list[int]:
    calls = [0]
    real = getattr(corpus_mod, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus_mod, name, counted)
    return calls


def make_old(path):
    """Set mtime well in the past, so the (path, size, mtime) index trusts it."""
    os.utime(path, ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))


def test_cache_reused_then_rebuilt_when_the_file_changes(tmp_path, cache, monkeypatch):
    hashes, scans = count_calls(monkeypatch, "_hash_sources"), count_calls(monkeypatch, "_scan")
    builds = count_calls(monkeypatch, "_build_entry")
    f = write(tmp_path / "c.txt", "hello world\n")
    make_old(f)
    first = load([f], cache)
    assert (hashes[0], scans[0], builds[0]) == (1, 1, 1)
    built_mtime = first.cache_path.stat().st_mtime_ns

    second = load([f], cache)  # index hit: not even rehashed
    assert (hashes[0], scans[0], builds[0]) == (1, 1, 1)
    assert second.cache_path == first.cache_path
    assert second.cache_path.stat().st_mtime_ns == built_mtime
    assert second.ids.tolist() == first.ids.tolist()

    write(f, "HELLO world\n")  # same size, new content
    os.utime(f, ns=(1_600_000_000_000_000_001,) * 2)  # another old mtime
    third = load([f], cache)
    assert (hashes[0], scans[0], builds[0]) == (2, 2, 2)
    assert third.cache_path != first.cache_path
    assert_corpus_is(third, "HELLO world\n")


def test_cache_deletes_the_entries_used_longest_ago_past_its_limit(tmp_path, cache, monkeypatch):
    """Three entries of ~3.5 kB and an 8 kB limit: building the third deletes the one used
    longest ago (b: built after a, but a was opened again since), all its files; a corpus still
    open stays readable after its entry is deleted."""
    from charrnn import corpus as C

    monkeypatch.setattr(C, "CACHE_BYTES", 8_000)
    files = [write(tmp_path / f"{n}.txt", n * 3_000) for n in "abc"]
    a = load([files[0]], cache)
    b = load([files[1]], cache)
    for when, corpus in enumerate((a, b), 1):  # a used longest ago, then b
        meta = corpus.cache_path.with_name(corpus.cache_path.name.replace(".ids.npy", ".json"))
        os.utime(meta, (when, when))
    a_again = load([files[0]], cache)  # a is used again: b is now the one used longest ago
    c = load([files[2]], cache)
    assert a_again.cache_path.exists() and c.cache_path.exists()
    assert not b.cache_path.exists()  # evicted, all three of its files
    assert len(list(cache.glob("*.ids.npy"))) == len(list(cache.glob("*.vocab.npy"))) == 2
    assert len([p for p in cache.glob("*.json") if p.name != "index.json"]) == 2
    assert b.text() == "b" * 3_000  # still mapped: readable
    assert_corpus_is(load([files[1]], cache), "b" * 3_000)  # and simply rebuilt when asked


def test_touched_but_unchanged_file_is_rehashed_not_rebuilt(tmp_path, cache, monkeypatch):
    hashes, scans = count_calls(monkeypatch, "_hash_sources"), count_calls(monkeypatch, "_scan")
    f = write(tmp_path / "c.txt", "same text\n")
    load([f], cache)
    os.utime(f)  # a fresh mtime: the index cannot vouch for it, the content hash can
    c = load([f], cache)
    assert (hashes[0], scans[0]) == (2, 1)
    assert_corpus_is(c, "same text\n")


def test_same_content_other_settings_gets_its_own_entry(tmp_path, cache):
    f = write(tmp_path / "c.txt", b"ab\xffcd")
    r = load([f], cache, errors="replace")
    i = load([f], cache, errors="ignore")
    assert r.text() == "ab\ufffdcd" and i.text() == "abcd"
    assert r.cache_path != i.cache_path


def test_split_between_files_matters_to_the_key(tmp_path, cache):
    """Same bytes, split differently: a BOM at the start of the second file is dropped."""
    bom = "\ufeff".encode()
    one = write(tmp_path / "one.txt", b"ab" + bom + b"cd")
    a, b = write(tmp_path / "a.txt", b"ab"), write(tmp_path / "b.txt", bom + b"cd")
    assert load([one], cache).text() == "ab\ufeffcd"
    assert load([a, b], cache).text() == "abcd"


def test_damaged_cache_entry_is_rebuilt(tmp_path, cache):
    f = write(tmp_path / "c.txt", "some text to cache\n")
    first = load([f], cache)
    path = first.cache_path
    del first
    path.write_bytes(b"garbage, not an npy file")
    with pytest.warns(CharrnnWarning, match="is damaged"):
        assert_corpus_is(load([f], cache), "some text to cache\n")
    path.write_bytes(path.read_bytes()[:-3])  # truncated
    with pytest.warns(CharrnnWarning, match="is damaged"):
        assert_corpus_is(load([f], cache), "some text to cache\n")
    (cache / "index.json").write_text("{not json")
    assert_corpus_is(load([f], cache), "some text to cache\n")


def test_interrupted_build_leaves_no_entry(tmp_path, cache, monkeypatch):
    text = "interrupt me please " * 20
    f = write(tmp_path / "c.txt", text)
    real = corpus_mod._codepoints
    calls = [0]

    def interrupting(chunk):
        calls[0] += 1
        if calls[0] == (len(text) // 16) + 5:  # a few chunks into pass 2
            raise KeyboardInterrupt
        return real(chunk)

    monkeypatch.setattr(corpus_mod, "_codepoints", interrupting)
    with pytest.raises(KeyboardInterrupt):
        load([f], cache, chunk_bytes=16)
    assert sorted(p.name for p in cache.iterdir()) == []  # no temp file, no partial entry
    monkeypatch.setattr(corpus_mod, "_codepoints", real)
    assert_corpus_is(load([f], cache, chunk_bytes=16), text)


def test_unwritable_cache_dir_falls_back_to_temp(tmp_path, monkeypatch):
    f = write(tmp_path / "c.txt", "fallback\n")
    not_a_dir = write(tmp_path / "plain-file", "x")  # mkdir under a file fails, even for root
    monkeypatch.setattr(corpus_mod.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    c = load_corpus([str(f)], cache_dir=not_a_dir / "cache")
    assert_corpus_is(c, "fallback\n")
    assert c.cache_path.is_relative_to(tmp_path / "tmp")


def test_default_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "a"))
    assert corpus_mod.default_cache_dir() == tmp_path / "a" / "corpus"
    monkeypatch.delenv("CHARRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus_mod.default_cache_dir() == tmp_path / "xdg" / "charrnn" / "corpus"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert corpus_mod.default_cache_dir() == tmp_path / "home" / ".cache" / "charrnn" / "corpus"
    f = write(tmp_path / "c.txt", "env\n")
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "a"))
    assert load_corpus([str(f)]).cache_path.parent == tmp_path / "a" / "corpus"


# ------------------------------------------------------------------ splits


def test_split_sizes_and_order():
    tr, va, te = split_ids(1000)
    assert (tr, va, te) == (slice(0, 900), slice(900, 950), slice(950, 1000))
    tr, va, te = split_ids(1000, 0.1, 0.0)
    assert (tr, va, te) == (slice(0, 900), slice(900, 1000), slice(1000, 1000))


@pytest.mark.parametrize("n", [6, 7, 10, 41, 100, 12_345])
@pytest.mark.parametrize("fracs", [(0.05, 0.05), (0.1, 0.0), (0.0, 0.0), (0.3, 0.2)])
def test_split_rules(n, fracs):
    val_f, test_f = fracs
    try:
        tr, va, te = split_ids(n, val_f, test_f)
    except CorpusError:
        # only when the minimums cannot be met
        need = sum(0 if f == 0 else max(2, round(n * f)) for f in fracs) + 2
        assert n < need + 1  # (round half up vs banker's rounding differ by at most one)
        return
    lens = [s.stop - s.start for s in (tr, va, te)]
    assert tr.start == 0 and tr.stop == va.start and va.stop == te.start and te.stop == n
    assert lens[0] >= 2
    for f, length in zip(fracs, lens[1:], strict=True):
        assert length == 0 if f == 0 else length >= 2 and abs(length - n * f) <= max(2, 0.5)


def test_split_too_small():
    with pytest.raises(CorpusError, match="too small to split: 5 characters, need at least 6"):
        split_ids(5)
    assert split_ids(2, 0, 0) == (slice(0, 2), slice(2, 2), slice(2, 2))
    with pytest.raises(CorpusError):
        split_ids(1, 0, 0)
    with pytest.raises(UsageError):
        split_ids(100, 0.5, 0.5)


# ------------------------------------------------------------------ batches


def naive_batch(ids, batch, seq, k):
    """Batch k by explicit loops over char-rnn's layout."""
    length = (len(ids) - 1) // batch
    x = np.zeros((batch, seq), dtype=np.int64)
    y = np.zeros((batch, seq), dtype=np.int64)
    for b in range(batch):
        for t in range(seq):
            i = b * length + k * seq + t
            x[b, t], y[b, t] = ids[i], ids[i + 1]
    return x, y


@pytest.mark.parametrize(("n", "batch", "seq"), [(101, 10, 10), (1000, 7, 13), (57, 1, 56)])
def test_batches_layout_against_naive_loops(n, batch, seq):
    ids = np.random.default_rng(0).integers(0, 200, size=n).astype(np.uint8)
    b = Batches(ids, batch, seq)
    assert b.steps_per_epoch == ((n - 1) // batch) // seq
    for epoch in range(2):
        for k in range(b.steps_per_epoch):
            x, y, new_epoch = b.next()
            rx, ry = naive_batch(ids, batch, seq, k)
            assert x.dtype == np.int32 and y.dtype == np.int32 and x.shape == (batch, seq)
            assert np.array_equal(x, rx) and np.array_equal(y, ry)
            assert new_epoch == (k == 0)
            assert b.epoch == epoch + (k + 1) // b.steps_per_epoch


def test_batches_stream_continuity():
    """Row b of batch k+1 continues row b of batch k: carried hidden state makes sense."""
    ids = np.arange(1 + 4 * 30, dtype=np.int64) % 251
    b = Batches(ids.astype(np.uint8), 4, 10)
    x0, y0, _ = b.next()
    x1, _, _ = b.next()
    assert np.array_equal(y0[:, :-1], x0[:, 1:])
    assert np.array_equal(x1[:, 0], y0[:, -1])


def test_batches_resume_mid_epoch_equals_uninterrupted():
    ids = np.random.default_rng(1).integers(0, 50, size=2000).astype(np.uint8)
    straight = Batches(ids, 6, 11)
    expected = [straight.next() for _ in range(3 * straight.steps_per_epoch + 4)]
    first = Batches(ids, 6, 11)
    got = [first.next() for _ in range(40)]  # mid second epoch (29 steps per epoch)
    state = json.loads(json.dumps(first.state_dict()))
    resumed = Batches(ids, 6, 11)
    resumed.load_state_dict(state)
    got += [resumed.next() for _ in range(len(expected) - 40)]
    for (ex, ey, en), (gx, gy, gn) in zip(expected, got, strict=True):
        assert np.array_equal(ex, gx) and np.array_equal(ey, gy) and en == gn
    assert Batches(ids, 6, 11, position=40).next()[0].tolist() == expected[40][0].tolist()


def test_batches_refuse_another_layout():
    ids = np.zeros(1000, dtype=np.uint8)
    state = Batches(ids, 5, 10).state_dict()
    with pytest.raises(CorpusError, match="batch 5, seq 10"):
        Batches(ids, 6, 10).load_state_dict(state)
    with pytest.raises(CorpusError, match="damaged"):
        Batches(ids, 5, 10).load_state_dict({"position": "x"})


def test_batches_need_one_full_batch():
    with pytest.raises(CorpusError, match="shorter than one batch"):
        Batches(np.zeros(100, dtype=np.uint8), 10, 10)  # needs 101
    assert Batches(np.zeros(101, dtype=np.uint8), 10, 10).steps_per_epoch == 1


@pytest.mark.parametrize(
    ("n", "batch", "seq", "expected"),
    [
        (5001, 50, 100, (50, 100)),
        (5000, 50, 100, (49, 100)),
        (1000, 50, 100, (9, 100)),
        (101, 50, 100, (1, 100)),
        (50, 50, 100, (1, 49)),
        (2, 50, 100, (1, 1)),
    ],
)
def test_fit_batch(n, batch, seq, expected):
    b, t, warning = fit_batch(n, batch, seq)
    assert (b, t) == expected
    assert (warning is None) == (expected == (batch, seq))
    if warning:
        assert f"using batch {b} and seq {t}" in warning
    Batches(np.zeros(n, dtype=np.uint8), b, t)  # the fitted layout is accepted


def test_fit_batch_too_small():
    for n in (0, 1):
        with pytest.raises(CorpusError, match="need at least 2"):
            fit_batch(n, 50, 100)


@pytest.mark.parametrize(("n", "seq"), [(1, 5), (2, 5), (10, 3), (10, 9), (10, 100), (101, 10)])
def test_iter_chunks_cover_the_split(n, seq):
    ids = (np.arange(n) * 7 % 256).astype(np.uint8)
    chunks = list(iter_chunks(ids, seq))
    assert all(x.shape == y.shape and x.shape[0] == 1 and x.dtype == np.int32 for x, y in chunks)
    assert all(x.shape[1] == seq for x, _ in chunks[:-1])
    xs = [int(v) for x, _ in chunks for v in x[0]]
    ys = [int(v) for _, y in chunks for v in y[0]]
    assert xs == ids[:-1].tolist() and ys == ids[1:].tolist()
