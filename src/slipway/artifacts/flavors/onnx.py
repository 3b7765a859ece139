"""ONNX models run by ONNX Runtime on the CPU, one thread per session."""

from __future__ import annotations

from typing import Any

import numpy as np

from slipway.artifacts.flavors import (
    LoadSpec,
    ModelOutput,
    class_labels,
    labels_of,
    library_version,
    missing_extra,
)
from slipway.artifacts.safety import refuse_pickle
from slipway.errors import ModelLoadFailed, UnsafeArtifact


class OnnxFlavor:
    name = "onnx"

    def validate(self, data: bytes, spec: LoadSpec) -> None:
        refuse_pickle(data)
        try:
            import onnx
        except ImportError:
            raise missing_extra("onnx", "onnx") from None
        try:
            model = onnx.load_model_from_string(data)
        except Exception as exc:
            raise ModelLoadFailed(f"not a readable ONNX model: {exc}") from None
        if not model.graph.node and not model.graph.output:
            raise ModelLoadFailed("not an ONNX model (the graph is empty)")
        # External data would make the runtime read files outside the artifact.
        for tensor in _tensors(model.graph, onnx):
            if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
                raise UnsafeArtifact(
                    f"the ONNX model refers to external data (tensor {tensor.name!r}); "
                    "embed all weights in the model file "
                    "(onnx.save_model(model, path, save_as_external_data=False))"
                )

    def load(self, data: bytes, spec: LoadSpec) -> OnnxPredictor:
        self.validate(data, spec)
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_extra("onnxruntime", "onnx") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelLoadFailed(f"ONNX Runtime could not load the model: {exc}") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadFailed(
                f"the ONNX model has {len(inputs)} inputs; slipway feeds one 2-D tensor"
            )
        return OnnxPredictor(session, spec)

    def library_versions(self) -> dict[str, str]:
        return {"onnx": library_version("onnx"), "onnxruntime": library_version("onnxruntime")}


def _tensors(graph: Any, onnx: Any) -> list[Any]:
    """Every initializer and constant tensor, subgraphs included."""
    found: list[Any] = list(graph.initializer)
    found += [s.values for s in graph.sparse_initializer]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                found.append(attr.t)
            found += list(attr.tensors)
            if attr.type == onnx.AttributeProto.GRAPH:
                found += _tensors(attr.g, onnx)
            for sub in attr.graphs:
                found += _tensors(sub, onnx)
    return found


_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_INT_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


class OnnxPredictor:
    # Its calls only compute: a short one may run on the event loop (serving/calls.py).
    compute_only = True

    def __init__(self, session: Any, spec: LoadSpec) -> None:
        self.session = session
        self.spec = spec
        meta = session.get_inputs()[0]
        self._input = meta.name
        self._dtype: Any = _FLOAT_TYPES.get(meta.type) or _INT_TYPES.get(meta.type)
        if self._dtype is None and meta.type != "tensor(string)":
            raise ModelLoadFailed(f"unsupported ONNX input type {meta.type}")
        self._outputs = [o.name for o in session.get_outputs()]

    def predict(self, X: np.ndarray) -> ModelOutput:
        feed = X.astype(self._dtype) if self._dtype is not None else X.astype(str)
        results = self.session.run(None, {self._input: feed})
        first = np.asarray(results[0])
        if len(results) == 1:
            return ModelOutput(first.reshape(len(X), -1)[:, 0], None, None)
        second = results[1]
        if isinstance(second, list):  # a ZipMap: one {class: probability} dict per row
            keys = list(second[0]) if second else list(self.spec.classes or ())
            if self.spec.classes is not None and all(c in keys for c in self.spec.classes):
                keys = list(self.spec.classes)  # columns in the signature's order
            proba = np.array([[row[k] for k in keys] for row in second], dtype=np.float64)
            proba = proba.reshape(len(second), len(keys))
            classes = [_plain(k) for k in keys]
        else:
            proba = np.asarray(second, dtype=np.float64)
            if proba.ndim != 2:
                return ModelOutput(first.reshape(len(X), -1)[:, 0], None, None)
            classes = class_labels(self.spec, proba.shape[1])
        labels = first.reshape(-1)
        if labels.shape[0] != len(X):
            labels = labels_of(proba, classes)
        return ModelOutput(labels, proba.reshape(len(X), -1), classes)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v
