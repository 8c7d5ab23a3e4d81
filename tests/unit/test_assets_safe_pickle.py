"""The allow-listed unpickler refuses every global it was not given, and never runs a payload."""

from __future__ import annotations

import io
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from albedogan.assets.safe_pickle import (
    CONTAINER_GLOBALS,
    NUMPY_GLOBALS,
    UnsafePickleError,
    load_torch_bytes,
    restricted_load_file,
    restricted_loads,
)

ALLOWED = {**NUMPY_GLOBALS, **CONTAINER_GLOBALS}


class _Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_plain_data_roundtrip():
    data = {"a": np.arange(6, dtype=np.float64).reshape(2, 3), "s": {1, 2}, "o": OrderedDict(x=np.float32(2.5))}
    out = restricted_loads(pickle.dumps(data, protocol=2), ALLOWED)
    np.testing.assert_array_equal(out["a"], data["a"])
    assert out["s"] == {1, 2} and out["o"]["x"] == np.float32(2.5)


def test_python2_names_are_mapped():
    # protocol-2 pickles written by Python 2 reference __builtin__.set
    blob = b"\x80\x02c__builtin__\nset\nq\x00]q\x01K\x01a\x85q\x02Rq\x03."
    assert restricted_loads(blob, ALLOWED) == {1}


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_payload_refused_and_not_run(tmp_path, protocol):
    marker = tmp_path / "pwned"
    blob = pickle.dumps({"x": _Payload(str(marker))}, protocol=protocol)
    path = tmp_path / "evil.pkl"
    path.write_bytes(blob)
    with pytest.raises(UnsafePickleError, match=r"evil\.pkl.*(posix|os)\.system"):
        restricted_load_file(path, ALLOWED)
    assert not marker.exists()


def test_object_arrays_only_hold_allowed_objects(tmp_path):
    arr = np.array([{"a": 1}], dtype=object)  # as in DECA's landmark_embedding.npy
    assert restricted_loads(pickle.dumps(arr, protocol=2), ALLOWED)[0] == {"a": 1}
    evil = np.array([_Payload(str(tmp_path / "pwned"))], dtype=object)
    with pytest.raises(UnsafePickleError, match="system"):
        restricted_loads(pickle.dumps(evil, protocol=2), ALLOWED)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("blob", [b"", b"\x80\x02", b"garbage", pickle.dumps([1, 2])[:-3]])
def test_truncated_or_garbage(blob):
    with pytest.raises(UnsafePickleError, match="<bytes>"):
        restricted_loads(blob, ALLOWED)


def test_persistent_ids_refused_by_default():
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if obj == "ref" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(["ref"])
    with pytest.raises(UnsafePickleError, match="persistent id"):
        restricted_loads(buf.getvalue(), ALLOWED)


def test_load_torch_bytes_safe(tmp_path):
    buf = io.BytesIO()
    torch.save(torch.arange(3.0), buf)
    assert torch.equal(load_torch_bytes(buf.getvalue()), torch.arange(3.0))
    evil = io.BytesIO()
    torch.save({"x": _Payload(str(tmp_path / "pwned"))}, evil)
    with pytest.raises(UnsafePickleError):
        load_torch_bytes(evil.getvalue())
    assert not (tmp_path / "pwned").exists()
