"""Content-addressed artifact store: bytes in, SHA-256 out, hash re-checked on read.

Local layout is ``<root>/sha256/<first 2 hex>/<full hex>``; a user's file name never
reaches the file system. Local writes are atomic (temp file, fsync, rename, fsync dir)
so a crash leaves either the whole artifact or nothing. Any fsspec URL works too; object
stores make a single PUT atomic, so remote writes go straight to the final key.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from slipway.errors import ArtifactIntegrityError, NotFound, PayloadTooLarge, ValidationFailed

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class ArtifactInfo:
    sha256: str
    size: int


def check_sha256(sha256: str) -> str:
    """The hash itself when it is 64 lowercase hex digits; ValidationFailed otherwise."""
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise ValidationFailed.field("sha256", "must be 64 lowercase hex digits")
    return sha256


def _fsync_dir(path: str) -> None:
    # The rename is only durable once the directory entry is flushed too.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArtifactStore:
    def __init__(self, url: str, max_bytes: int) -> None:
        self.url = url
        self.max_bytes = max_bytes
        self._root: str | None = None
        self._fs: Any = None
        local = url.removeprefix("file://") if url.startswith("file://") else url
        if "://" not in local:
            self._root = os.path.abspath(os.path.expanduser(local))
            os.makedirs(os.path.join(self._root, "sha256"), exist_ok=True)
            os.makedirs(os.path.join(self._root, "tmp"), exist_ok=True)
        else:
            import fsspec

            self._fs, self._base = fsspec.core.url_to_fs(url)
            self._base = self._base.rstrip("/")

    @property
    def is_local(self) -> bool:
        return self._root is not None

    def _key(self, sha256: str) -> str:
        check_sha256(sha256)
        if self._root is not None:
            return os.path.join(self._root, "sha256", sha256[:2], sha256)
        return f"{self._base}/sha256/{sha256[:2]}/{sha256}"

    # -- writing ----------------------------------------------------------------------
    def begin_upload(self) -> Upload:
        return Upload(self)

    def put_bytes(self, data: bytes) -> ArtifactInfo:
        upload = self.begin_upload()
        try:
            upload.write(data)
            return upload.commit()
        except BaseException:
            upload.abort()
            raise

    # -- reading ----------------------------------------------------------------------
    def exists(self, sha256: str) -> bool:
        key = self._key(sha256)
        if self._root is not None:
            return os.path.isfile(key)
        return bool(self._fs.exists(key))

    def read_verified(self, sha256: str, expected_size: int | None = None) -> bytes:
        key = self._key(sha256)
        try:
            if self._root is not None:
                with open(key, "rb") as f:
                    data = f.read()
            else:
                data = self._fs.cat_file(key)
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} not found") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256 or (expected_size is not None and len(data) != expected_size):
            raise ArtifactIntegrityError(
                f"artifact hash mismatch: expected sha256 {sha256}, got {actual} "
                f"({len(data)} bytes); the stored artifact was altered or corrupted"
            )
        return data

    def local_path(self, sha256: str) -> str | None:
        return self._key(sha256) if self._root is not None else None


class Upload:
    """A streamed write; the hash is computed as chunks arrive."""

    def __init__(self, store: ArtifactStore) -> None:
        self._store = store
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False
        self._tmp_path: str | None = None
        self._file: BinaryIO | None = None
        # Remote stores get one PUT at commit; spool big uploads to disk, not memory.
        self._spool: Any = None
        root = store._root
        if root is not None:
            fd, self._tmp_path = tempfile.mkstemp(prefix="upload-", dir=os.path.join(root, "tmp"))
            self._file = os.fdopen(fd, "wb")
        else:
            self._spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)

    def write(self, chunk: bytes) -> None:
        if self._done:
            raise RuntimeError("upload already finished")
        self._size += len(chunk)
        if self._size > self._store.max_bytes:
            self.abort()
            raise PayloadTooLarge(
                f"artifact is larger than the limit of {self._store.max_bytes} bytes"
            )
        self._hash.update(chunk)
        if self._file is not None:
            self._file.write(chunk)
        else:
            self._spool.write(chunk)

    def commit(self) -> ArtifactInfo:
        if self._done:
            raise RuntimeError("upload already finished")
        info = ArtifactInfo(self._hash.hexdigest(), self._size)
        final = self._store._key(info.sha256)
        if self._file is not None and self._tmp_path is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            if os.path.exists(final):  # same hash, same content: keep the one stored
                os.unlink(self._tmp_path)
            else:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(self._tmp_path, final)
                _fsync_dir(os.path.dirname(final))
        else:
            fs = self._store._fs
            if not fs.exists(final):
                fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
                self._spool.seek(0)
                with fs.open(final, "wb") as out:
                    shutil.copyfileobj(self._spool, out, 1 << 20)
            self._spool.close()
        self._done = True
        return info

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if self._spool is not None:
            self._spool.close()
        if self._file is not None:
            self._file.close()
        if self._tmp_path is not None and os.path.exists(self._tmp_path):
            os.unlink(self._tmp_path)
