"""What `charrnn train DIR [DIR|FILE ...]` reads: folders expanded into their text files.

A folder stands for every file under it, recursively, sorted by path (folder by folder, names in
code-point order), as if they were listed one by one; `--glob PATTERN` (repeatable) keeps the
files whose path relative to the folder matches (fnmatch: `*` also matches `/`), or, for a
pattern without a `/`, whose name matches. Files named on the command line are always read,
strictly, as before.

Under a folder:
* hidden files and folders (names starting with '.', such as .git) are left out;
* symlinks are followed, but each folder and each file is read once: a link to one already read
  (a symlink loop, a second way to the same folder, a hard link) is not followed (one warning
  line);
* files that are not text are skipped, with one warning line saying how many and where the
  checkpoint lists them: binary (a NUL byte in the first 8 KiB), undecodable (not valid in the
  encoding, unless --errors replace), unreadable (permissions, broken links) and special files
  (pipes, sockets, devices). With `--errors strict` given explicitly, the first of them stops
  training instead, naming the file. With --bytes every readable regular file is read;
* a folder with nothing left to read is an error saying what was left out.

The corpus fingerprint then covers the file list: `files` (count) and `list_sha256`, the sha256
of every file's path (relative to its folder, or as given) and size, in order.
"""

from __future__ import annotations

import codecs
import fnmatch
import hashlib
import json
import os
import stat
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charrnn.corpus import _pending_bytes
from charrnn.errors import CorpusError, UsageError

STDIN = "-"
SNIFF_BYTES = 8192  # a NUL byte in this many first bytes marks a file as binary (as git does)
CHUNK = 1 << 22
LISTED = 100  # skipped files the checkpoint lists by name
REASONS = ("binary", "undecodable", "unreadable", "special")


@dataclass
class Expanded:
    """The files to read, in order, and what was left out on the way."""

    files: list[str]  # paths to read ("-" for stdin)
    listing: list[tuple[str, int]]  # (path relative to its folder, or as given; bytes) per file
    folders: list[str]  # the folders given
    globs: list[str]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> paths
    links: list[str] = field(default_factory=list)  # links to what was already read

    def meta(self) -> dict[str, Any]:
        """The fingerprint's share: the file list, and what was skipped (for inspect)."""
        spec = json.dumps(self.listing, ensure_ascii=False).encode()
        out: dict[str, Any] = {
            "files": len(self.files),
            "list_sha256": hashlib.sha256(spec).hexdigest(),
        }
        if self.folders:
            out["folders"] = [str(Path(f).resolve()) for f in self.folders]
        if self.globs:
            out["glob"] = list(self.globs)
        skipped = [(r, p) for r in REASONS for p in self.skipped.get(r, [])]
        if skipped:
            out["skipped"] = {r: len(self.skipped[r]) for r in REASONS if self.skipped.get(r)}
            out["skipped_files"] = [f"{p} ({r})" for r, p in skipped[:LISTED]]
        return out

    def warnings(self, checkpoint: str | None = None) -> list[str]:
        """One line for the files skipped (saying where `checkpoint` lists them; None: the
        first few named), one for the links not followed."""
        out = []
        counts = {r: len(self.skipped[r]) for r in REASONS if self.skipped.get(r)}
        if counts:
            n = sum(counts.values())
            kinds = ", ".join(f"{c} {r}" for r, c in counts.items())
            paths = [p for r in REASONS for p in self.skipped.get(r, [])]
            folders = ", ".join(f.rstrip("/") + "/" for f in self.folders)
            head = f"skipped {n} file(s) under {folders} that are not text ({kinds})"
            if checkpoint is None:
                more = f" and {n - 3} more" if n > 3 else ""
                out.append(f"{head}: {', '.join(paths[:3])}{more}")
            else:
                out.append(
                    f"{head}, e.g. {paths[0]}: `charrnn inspect {checkpoint}` lists them "
                    "(--errors strict stops on them instead)"
                )
        if self.links:
            out.append(
                f"read once: not following {len(self.links)} link(s) to a folder or file already "
                f"read (a symlink loop, or a second way to the same place; e.g. {self.links[0]})"
            )
        return out

    @property
    def name(self) -> str:
        """How the corpus is named: the folders' names, and the file count."""
        given = [(Path(f).resolve().name or "/").rstrip("/") + "/" for f in self.folders]
        n = len(self.files)
        more = "+more" if len(given) > 3 else ""
        return f"{'+'.join(given[:3])}{more} ({n} file{'s' if n != 1 else ''})"


def expand(
    args: list[str],
    globs: list[str] | None = None,
    encoding: str = "utf-8",
    errors: str = "strict",
    *,
    strict: bool = False,
    as_bytes: bool = False,
) -> Expanded:
    """The files behind `args` (files, folders, "-"), in order. strict: a file under a folder
    that is not text is an error instead of being skipped. errors (the decoding mode) other
    than strict, and as_bytes, read undecodable files too."""
    globs = list(globs or [])
    for g in globs:
        if not g or g.startswith("/"):
            raise UsageError(f"--glob {g!r}: give a pattern relative to the folder, e.g. '*.py'")
    folders = [a for a in args if a != STDIN and os.path.isdir(a)]
    if globs and not folders:
        raise UsageError("--glob picks files inside folders: give a folder to train on")
    out = Expanded([], [], folders, globs)
    for arg in args:
        if arg in folders:
            before = len(out.files)
            _walk(Path(arg), out, globs, encoding, errors, strict, as_bytes)
            if len(out.files) == before:
                raise CorpusError(_empty(arg, out, globs))
        else:
            out.files.append(arg)
            out.listing.append((arg, _size(arg)))
    return out


def _size(arg: str) -> int:
    try:
        return os.stat(arg).st_size if arg != STDIN else -1
    except OSError:
        return -1  # load_corpus says what is wrong with it


def _empty(folder: str, out: Expanded, globs: list[str]) -> str:
    left = [f"{len(v)} {r}" for r, v in out.skipped.items() if v]
    why = f" ({', '.join(left)} left out)" if left else ""
    if globs:
        pats = " ".join(f"--glob {g!r}" for g in globs)
        return f"{folder}: no file under it matches {pats}{why}"
    return f"{folder}: no text files in it{why} (hidden files and folders are left out)"


def _walk(root: Path, out: Expanded, globs, encoding, errors, strict, as_bytes) -> None:
    seen: set[tuple[int, int]] = set()
    found: list[tuple[tuple[str, ...], Path]] = []  # (relative parts, path)

    def visit(folder: Path, rel: tuple[str, ...]) -> None:
        try:
            st = folder.stat()
            key = (st.st_dev, st.st_ino)
            if key in seen:
                out.links.append(f"{folder} -> {os.path.realpath(folder)}")
                return
            seen.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            _left_out(out, "unreadable", str(folder), strict, e.strerror or str(e))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                visit(path, (*rel, entry.name))
            elif _wanted("/".join((*rel, entry.name)), entry.name, globs):
                found.append(((*rel, entry.name), path))

    visit(root, ())
    files: set[tuple[int, int]] = set()
    for rel, path in sorted(found):
        with suppress(OSError):  # what cannot be stat'ed is named by _not_text below
            st = path.stat()
            if (st.st_dev, st.st_ino) in files:
                out.links.append(f"{path} -> {os.path.realpath(path)}")
                continue
            files.add((st.st_dev, st.st_ino))
        reason = _not_text(path, encoding, errors, as_bytes)
        if reason is None:
            out.files.append(str(path))
            out.listing.append(("/".join(rel), path.stat().st_size))
        else:
            _left_out(out, reason[0], str(path), strict, reason[1])


def _wanted(rel: str, name: str, globs: list[str]) -> bool:
    if not globs:
        return True
    return any(fnmatch.fnmatchcase(name if "/" not in g else rel, g) for g in globs)


def _left_out(out: Expanded, reason: str, path: str, strict: bool, detail: str) -> None:
    if strict:
        raise CorpusError(f"{path}: {detail} (leave out --errors strict to skip such files)")
    out.skipped.setdefault(reason, []).append(path)


def _not_text(path: Path, encoding: str, errors: str, as_bytes: bool) -> tuple[str, str] | None:
    """Why the file is not read as text, (reason, detail), or None when it is fine."""
    if path.is_symlink() and not path.exists():
        return "unreadable", f"a broken symlink (to {os.readlink(path)})"
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            return "special", "not a regular file (a pipe, socket or device)"
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as e:
        return "unreadable", f"cannot read it ({e.strerror or e})"
    with f:
        try:
            head = f.read(SNIFF_BYTES)
            if as_bytes:
                return None
            if b"\0" in head:
                return "binary", "a binary file (it holds NUL bytes)"
            if errors != "strict":
                return None
            decoder = codecs.getincrementaldecoder(encoding)("strict")
            data, pos = head, 0
            while True:
                pending = _pending_bytes(decoder)
                try:
                    decoder.decode(data, final=not data)
                except UnicodeDecodeError as e:
                    at = pos - pending + e.start
                    return "undecodable", f"invalid {encoding} at byte {at}"
                if not data:
                    return None
                pos += len(data)
                data = f.read(CHUNK)
        except OSError as e:
            return "unreadable", f"cannot read it ({e.strerror or e})"
