from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from slipway.artifacts.store import ArtifactStore
from slipway.errors import ArtifactIntegrityError, NotFound, PayloadTooLarge, ValidationFailed

DATA = b"model bytes " * 100
SHA = hashlib.sha256(DATA).hexdigest()


def test_put_and_read_round_trip(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "artifacts"), max_bytes=1 << 20)
    info = store.put_bytes(DATA)
    assert (info.sha256, info.size) == (SHA, len(DATA))
    assert store.exists(SHA)
    assert store.read_verified(SHA, expected_size=len(DATA)) == DATA
    path = store.local_path(SHA)
    assert path == str(tmp_path / "artifacts" / "sha256" / SHA[:2] / SHA)
    assert os.listdir(tmp_path / "artifacts" / "tmp") == []


def test_same_bytes_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), max_bytes=1 << 20)
    first, second = store.put_bytes(DATA), store.put_bytes(DATA)
    assert first == second
    assert os.listdir(tmp_path / "sha256" / SHA[:2]) == [SHA]
    assert os.listdir(tmp_path / "tmp") == []


def test_streamed_upload_in_chunks(tmp_path: Path) -> None:
    store = ArtifactStore(f"file://{tmp_path}", max_bytes=1 << 20)
    upload = store.begin_upload()
    for i in range(0, len(DATA), 7):
        upload.write(DATA[i : i + 7])
    assert upload.commit().sha256 == SHA
    assert store.read_verified(SHA) == DATA


def test_size_limit_raised_while_streaming(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), max_bytes=10)
    upload = store.begin_upload()
    upload.write(b"12345")
    with pytest.raises(PayloadTooLarge):
        upload.write(b"678901")
    assert os.listdir(tmp_path / "tmp") == []  # the partial temp file is gone
    with pytest.raises(PayloadTooLarge):
        store.put_bytes(b"x" * 11)


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), max_bytes=100)
    upload = store.begin_upload()
    upload.write(b"abc")
    upload.abort()
    assert os.listdir(tmp_path / "tmp") == []
    assert not store.exists(hashlib.sha256(b"abc").hexdigest())


def test_tampered_byte_is_detected(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), max_bytes=1 << 20)
    store.put_bytes(DATA)
    path = store.local_path(SHA)
    assert path is not None
    raw = bytearray(Path(path).read_bytes())
    raw[10] ^= 0xFF
    Path(path).write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError, match=f"hash mismatch.*{SHA}"):
        store.read_verified(SHA)


def test_missing_artifact_not_found(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path), max_bytes=100)
    with pytest.raises(NotFound):
        store.read_verified("0" * 64)
    assert not store.exists("0" * 64)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab" * 31, "A" * 64, "g" * 64, "", SHA + "/"])
def test_bad_sha_refused(tmp_path: Path, bad: str) -> None:
    store = ArtifactStore(str(tmp_path), max_bytes=100)
    with pytest.raises(ValidationFailed):
        store.read_verified(bad)
    with pytest.raises(ValidationFailed):
        store.exists(bad)


def test_memory_fsspec_url() -> None:
    store = ArtifactStore("memory://slipway-test-store", max_bytes=1 << 20)
    info = store.put_bytes(DATA)
    assert info.sha256 == SHA and store.exists(SHA)
    assert store.put_bytes(DATA) == info
    assert store.read_verified(SHA) == DATA
    assert store.local_path(SHA) is None
    with pytest.raises(NotFound):
        store.read_verified("1" * 64)
    upload = store.begin_upload()
    with pytest.raises(PayloadTooLarge):
        upload.write(b"x" * ((1 << 20) + 1))
