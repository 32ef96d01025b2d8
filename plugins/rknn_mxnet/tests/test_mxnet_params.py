"""The .params reader: every array version and dtype, files written by real mxnet, damaged files."""

from __future__ import annotations

import numpy as np
import pytest
from mxnet_util import params_bytes, reference_case

from rknn_core.errors import RknnError
from rknn_mxnet.params import parse_params, read_params, split_params

ARRAYS = {
    "arg:conv_weight": np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2) / 7,
    "arg:fc_bias": np.array([1.5, -2.25], np.float64),
    "aux:bn_moving_var": np.array([0.5, 1.0, 2.0], np.float16),
    "arg:ids": np.array([[1, -2], [3, 4]], np.int32),
    "arg:bytes": np.array([0, 7, 255], np.uint8),
    "arg:big": np.array([2**40, -5], np.int64),
}


@pytest.mark.parametrize("version", ["v1", "v2", "v3", "legacy"])
def test_round_trip_of_every_array_version(version):
    got = parse_params(params_bytes(ARRAYS, version))
    assert list(got) == list(ARRAYS)
    for name, value in ARRAYS.items():
        assert got[name].dtype == value.dtype and got[name].shape == value.shape, name
        np.testing.assert_array_equal(got[name], value)


def test_v3_keeps_a_scalar_and_v2_an_empty_array():
    assert parse_params(params_bytes({"s": np.array(2.5, np.float32)}, "v3"))["s"].shape == ()
    assert parse_params(params_bytes({"e": np.zeros((0,), np.float32)}, "v2"))["e"].size == 0


def test_prefixes_are_removed_for_the_symbol():
    assert sorted(split_params(parse_params(params_bytes(ARRAYS)))) == ["big", "bn_moving_var", "bytes", "conv_weight",
                                                                         "fc_bias", "ids"]
    with pytest.raises(RknnError, match="'w' is stored twice"):
        split_params({"arg:w": np.ones(1), "aux:w": np.ones(1)})


def test_files_written_by_mxnet():
    folder, _ = reference_case("ops_conv")
    formats = folder.parent / "formats"
    for stem in ("dtypes", "v3"):
        got = read_params(str(formats / f"{stem}.params"))
        with np.load(formats / f"{stem}.npz") as ref:
            assert sorted(got) == sorted(ref.files)
            for key in ref.files:
                assert got[key].dtype == ref[key].dtype, key
                np.testing.assert_array_equal(got[key], ref[key])
    with pytest.raises(RknnError, match="holds 1 arrays but 0 names"):
        read_params(str(formats / "unnamed.params"))


@pytest.mark.parametrize("cut", [3, 20, 40, 90, -3])
def test_truncated_files_name_the_place(cut):
    data = params_bytes({"arg:w": np.ones((2, 2), np.float32)})
    with pytest.raises(RknnError, match=r"'m.params' ends inside .*truncated"):
        parse_params(data[:cut], "m.params")


def test_damaged_files():
    good = params_bytes({"arg:w": np.ones(3, np.float32)})
    with pytest.raises(RknnError, match="not an MXNet .params file"):
        parse_params(b"\x00" * 16 + good[16:], "m.params")
    with pytest.raises(RknnError, match="bytes after its last name"):
        parse_params(good + b"\x00", "m.params")
    sparse = bytearray(good)
    sparse[28:32] = (1).to_bytes(4, "little")  # the storage type after the first array's magic
    with pytest.raises(RknnError, match="row_sparse storage"):
        parse_params(bytes(sparse), "m.params")
    flag = good.index((0).to_bytes(4, "little") + np.ones(3, np.float32).tobytes()[:4])
    bad_type = good[:flag] + (99).to_bytes(4, "little") + good[flag + 4:]
    with pytest.raises(RknnError, match="unknown type flag 99"):
        parse_params(bad_type, "m.params")
