"""Source digests remembered by stat: reused while a file is untouched, never after a rewrite."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import msgspec

from nexusmon.engine.digestmemo import FILE, SETTLE_S, DigestMemo

from .helpers import Workspace, statuses


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def settled_file(path: Path, data: bytes) -> Path:
    """A file whose modification and change times are older than SETTLE_S."""
    path.write_bytes(data)
    time.sleep(SETTLE_S + 0.1)  # ctime cannot be set back: it has to age
    return path


def test_a_settled_file_is_remembered_and_its_digest_reused(tmp_path: Path) -> None:
    src = settled_file(tmp_path / "data.bin", b"one")
    memo = DigestMemo(tmp_path)
    assert memo.digest(str(src), "data.bin") == sha(b"one")
    memo.save()
    saved = msgspec.msgpack.decode((tmp_path / FILE).read_bytes())
    stamp, digest = saved[1]["data.bin"]
    assert digest == sha(b"one")
    # The next process trusts the memo for the same stat: prove it by planting another digest.
    saved[1]["data.bin"] = [stamp, "f" * 64]
    (tmp_path / FILE).write_bytes(msgspec.msgpack.encode(saved))
    assert DigestMemo(tmp_path).digest(str(src), "data.bin") == "f" * 64


def test_a_rewrite_keeping_size_and_mtime_is_hashed_again(tmp_path: Path) -> None:
    src = settled_file(tmp_path / "data.bin", b"one")
    before = os.stat(src)
    memo = DigestMemo(tmp_path)
    memo.digest(str(src), "data.bin")
    memo.save()
    src.write_bytes(b"two")  # same size
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))  # same mtime, as `cp -p` or rsync -t keep it
    assert DigestMemo(tmp_path).digest(str(src), "data.bin") == sha(b"two")


def test_a_file_written_just_now_is_not_remembered(tmp_path: Path) -> None:
    src = tmp_path / "fresh.txt"
    src.write_bytes(b"fresh")
    memo = DigestMemo(tmp_path)
    assert memo.digest(str(src), "fresh.txt") == sha(b"fresh")
    memo.save()
    assert not (tmp_path / FILE).exists()


def test_a_damaged_memo_only_costs_hashing_again(tmp_path: Path) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"a")
    (tmp_path / FILE).write_bytes(b"\xc1 not msgpack")
    assert DigestMemo(tmp_path).digest(str(src), "a.txt") == sha(b"a")
    assert DigestMemo(None).digest(str(src), "a.txt") == sha(b"a")  # no state dir: nothing kept


def test_an_edited_source_that_keeps_size_and_mtime_still_misses_the_cache(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    try:
        ws.write("missions/s.yaml", """
            mission: s
            objective: copy a source
            tasks:
              copy: {sources: [data.txt], run: 'cat data.txt >> copies.log'}
            """)
        data = ws.write("data.txt", "v1\n")
        time.sleep(SETTLE_S + 0.1)
        assert statuses(ws.run("s")) == {"copy": "succeeded"}
        assert statuses(ws.run("s")) == {"copy": "cached"}
        assert (ws.state / FILE).is_file()  # the settled source was remembered
        before = os.stat(data)
        data.write_text("v2\n", encoding="utf-8")
        os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert statuses(ws.run("s")) == {"copy": "succeeded"}
        assert ws.lines("copies.log") == ["v1", "v2"]
    finally:
        ws.cleanup()
