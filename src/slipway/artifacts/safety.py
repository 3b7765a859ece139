"""Refuse pickles by content, whatever the file is called.

A pickle runs arbitrary code when loaded, so slipway never loads one: not bare, not
compressed the way joblib writes them, not inside a zip (torch's ``data.pkl``). Every
check reads a bounded prefix, so a huge or hostile upload costs little to inspect.
"""

from __future__ import annotations

import bz2
import io
import lzma
import pickletools
import zipfile
import zlib
from collections.abc import Callable

from slipway.errors import UnsafeArtifact

_SCAN_BYTES = 1 << 20  # prefix inspected for protocol 0/1 opcodes and decompressed
_MEMBER_BYTES = 64 << 10  # first bytes of each zip member
_MAX_MEMBERS = 10_000
_MAX_DEPTH = 3  # compression / zip nesting followed

_HOW_TO_CONVERT = (
    "Pickle files can run arbitrary code when loaded, so slipway refuses them. "
    "Save scikit-learn models with skops (skops.io.dump(model, 'model.skops')) or export "
    "them to ONNX (skl2onnx.to_onnx); save xgboost and lightgbm models in their native "
    "format (Booster.save_raw('ubj'), Booster.model_to_string())."
)


def refuse_pickle(data: bytes) -> None:
    """Raise UnsafeArtifact naming what was found when ``data`` holds a pickle."""
    data = bytes(data)
    found = _detect(data, 0)
    if found is None and not data.startswith(b"PK") and zipfile.is_zipfile(io.BytesIO(data)):
        found = _zip_pickle(data, 0)  # a zip may follow a stub (self-extracting style)
    if found is not None:
        raise UnsafeArtifact(f"refused: the artifact is {found}. {_HOW_TO_CONVERT}")


def _detect(data: bytes, depth: int) -> str | None:
    if depth > _MAX_DEPTH:
        return None
    if len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5:
        return f"a Python pickle (protocol {data[1]})"
    for magic, name, decompress in _COMPRESSED:
        if data.startswith(magic):
            inner = _bounded(decompress, data[:_SCAN_BYTES])
            if inner is not None:
                found = _detect(inner, depth + 1)
                if found is not None:
                    return f"{found} compressed with {name} (as joblib writes it)"
    if data.startswith(b"PK"):
        found = _zip_pickle(data, depth)
        if found is not None:
            return found
    if _is_text_pickle(data):
        return "a Python pickle (protocol 0/1)"
    return None


def _zip_pickle(data: bytes, depth: int) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_MEMBERS:
                raise UnsafeArtifact(f"refused: zip archive with more than {_MAX_MEMBERS} members")
            for info in infos:
                if info.is_dir():
                    continue
                with zf.open(info) as member:
                    head = member.read(_MEMBER_BYTES)
                found = _detect(head, depth + 1)
                if found is not None:
                    return f"a zip archive whose member {info.filename!r} is {found}"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError):
        return None  # not a readable zip: the flavor's own check will say what is wrong
    return None


def _is_text_pickle(data: bytes) -> bool:
    """True when ``data`` parses as pickle opcodes up to STOP (or fills the whole prefix).

    Protocol 0/1 pickles have no header; parsing opcodes (never executing them) is the only
    reliable sign. Other formats hit an unknown opcode within a few bytes.
    """
    prefix = data[:_SCAN_BYTES]
    stream = io.BytesIO(prefix)
    last = 0
    try:
        for opcode, _arg, pos in pickletools.genops(stream):
            last = pos if pos is not None else last
            if opcode.name == "STOP":
                return pos is not None and pos > 0
    except Exception:  # any parse error means "not a pickle"; nothing is executed
        # A truncated prefix that parsed cleanly to (nearly) its end is a big pickle.
        return len(data) > _SCAN_BYTES and last > _SCAN_BYTES - (64 << 10)
    return False


def _bounded(decompress: Callable[[bytes], bytes], data: bytes) -> bytes | None:
    try:
        return decompress(data)
    except Exception:  # corrupt or not really compressed: nothing to re-check
        return None


def _zlib(wbits: int) -> Callable[[bytes], bytes]:
    return lambda data: zlib.decompressobj(wbits).decompress(data, _SCAN_BYTES)


def _bz2(data: bytes) -> bytes:
    return bz2.BZ2Decompressor().decompress(data, _SCAN_BYTES)


def _lzma(data: bytes) -> bytes:
    return lzma.LZMADecompressor().decompress(data, _SCAN_BYTES)


_COMPRESSED: tuple[tuple[bytes, str, Callable[[bytes], bytes]], ...] = (
    (b"\x1f\x8b", "gzip", _zlib(31)),
    (b"\x78\x01", "zlib", _zlib(15)),
    (b"\x78\x5e", "zlib", _zlib(15)),
    (b"\x78\x9c", "zlib", _zlib(15)),
    (b"\x78\xda", "zlib", _zlib(15)),
    (b"BZh", "bz2", _bz2),
    (b"\xfd7zXZ\x00", "xz", _lzma),
    (b"\x5d\x00\x00", "lzma", _lzma),
)
