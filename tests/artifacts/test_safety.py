from __future__ import annotations

import io
import json
import pickle
import zipfile
from typing import Any

import joblib
import pytest

from slipway.artifacts.safety import refuse_pickle
from slipway.artifacts.serialize import serialize_model
from slipway.errors import UnsafeArtifact


class Plain:
    """A lambda-free object, as cloudpickle would also write with plain pickle opcodes."""

    def __init__(self) -> None:
        self.weights = [0.5, 1.5]


@pytest.mark.parametrize("protocol", range(6))
def test_every_pickle_protocol_refused(protocol: int, logreg: Any) -> None:
    with pytest.raises(UnsafeArtifact, match="pickle") as err:
        refuse_pickle(pickle.dumps(logreg, protocol=protocol))
    assert "skops.io.dump" in err.value.message and "ONNX" in err.value.message


@pytest.mark.parametrize("protocol", [0, 1])
def test_small_text_pickles_refused(protocol: int) -> None:
    with pytest.raises(UnsafeArtifact, match=r"protocol 0/1"):
        refuse_pickle(pickle.dumps({"a": [1, 2.5, "x"], "b": None}, protocol=protocol))


def test_object_pickle_refused() -> None:
    with pytest.raises(UnsafeArtifact):
        refuse_pickle(pickle.dumps(Plain()))


def test_large_protocol0_pickle_refused_within_bounds() -> None:
    big = pickle.dumps(list(range(300_000)), protocol=0)
    assert len(big) > 1 << 20
    with pytest.raises(UnsafeArtifact):
        refuse_pickle(big)


@pytest.mark.parametrize("compress", [0, 3, "gzip", "bz2", "lzma", "xz", "zlib"])
def test_joblib_files_refused(compress: Any, logreg: Any) -> None:
    buffer = io.BytesIO()
    joblib.dump(logreg, buffer, compress=compress)
    with pytest.raises(UnsafeArtifact, match="pickle"):
        refuse_pickle(buffer.getvalue())


def test_zip_with_pickle_member_refused(logreg: Any) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/version", "3")
        zf.writestr("archive/data.pkl", pickle.dumps(logreg, protocol=2))
    with pytest.raises(UnsafeArtifact, match=r"archive/data\.pkl"):
        refuse_pickle(buffer.getvalue())


def test_no_false_positive_on_real_artifacts(
    logreg: Any, pipeline: Any, xgb_clf: Any, lgbm_clf: Any, onnx_model: Any
) -> None:
    for model in (logreg, pipeline, xgb_clf, lgbm_clf, onnx_model):
        refuse_pickle(serialize_model(model).data)
    refuse_pickle(xgb_clf.get_booster().save_raw("json"))
    refuse_pickle(json.dumps({"class": "acme.models:Scorer", "init": {}}).encode())
    refuse_pickle(b"")
    refuse_pickle(b"N")


def test_no_false_positive_on_random_bytes() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    for size in (1, 10, 1000, (1 << 20) + 5):
        blob = rng.bytes(size)
        if blob[:1] == b"\x80":  # a real protocol 2-5 header is refused by design
            continue
        refuse_pickle(blob)
