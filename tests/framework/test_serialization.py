"""fw.save / fw.load: round trips, compatibility with the safetensors package, damaged files."""

import json
import math
import struct

import numpy as np
import pytest

import framework as fw
from framework.serialization import CheckpointError


def _eq(a, b):
    """Deep equality with types (int keys stay ints, tuples stay tuples, tensors compared exactly)."""
    assert type(a) is type(b) or (isinstance(a, fw.Tensor) and isinstance(b, fw.Tensor)), (a, b)
    if isinstance(a, fw.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            assert type(k) is type(next(kk for kk in b if kk == k))
            _eq(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _eq(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def test_round_trip_every_dtype_and_shape(tmp_path, rng):
    sd = {
        "f32": fw.tensor(rng.normal(size=(3, 4)).astype(np.float32)),
        "f64": fw.tensor(rng.normal(size=(2,)), dtype=fw.float64),
        "f16": fw.tensor(rng.normal(size=(5, 1, 2)).astype(np.float16)),
        "i64": fw.arange(7),
        "i32": fw.tensor([1, -2], dtype=fw.int32),
        "u8": fw.tensor(rng.integers(0, 255, size=(4, 4)).astype(np.uint8)),
        "b": fw.tensor([True, False, True]),
        "scalar": fw.tensor(3.5),
        "empty": fw.zeros(0, 3),
        "layer.0.weight": fw.randn(2, 2),
        "noncontig": fw.tensor(np.arange(12.0).reshape(3, 4).T.copy()).T,
    }
    fw.save(sd, tmp_path / "m.safetensors")
    _eq(fw.load(tmp_path / "m.safetensors"), sd)


def test_round_trip_nested_structure_keeps_types(tmp_path):
    obj = {
        "state": {0: {"step": fw.tensor(3.0), "exp_avg": fw.ones(2)}, 7: {"momentum_buffer": None}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 7], "nesterov": False,
                          "name": "head", "foreach": None}],
        "epoch": 12, "best": float("inf"), "worst": -math.inf, "nan": math.nan,
        "history": [0.5, [1, 2, (3, "x")], {}], "arr": np.arange(3, dtype=np.int16),
        "tricky": {"__tensor__": "not a ref", 1.5: "float key", True: "bool key", None: 0},
        "dotted": {"a.b": fw.ones(1), "a": {"b": fw.zeros(1)}},
    }
    fw.save(obj, tmp_path / "o.safetensors")
    back = fw.load(tmp_path / "o.safetensors")
    _eq(back, obj)
    assert list(back["state"]) == [0, 7] and isinstance(back["param_groups"][0]["betas"], tuple)


def test_round_trip_top_level_non_dict(tmp_path):
    for obj in ([fw.ones(2), 3], (1, "a"), 5, None, "text", fw.eye(3)):
        fw.save(obj, tmp_path / "x.safetensors")
        _eq(fw.load(tmp_path / "x.safetensors"), obj)


def test_file_objects(tmp_path):
    import io

    obj = {"w": fw.randn(3, 2), "s": fw.tensor(1.5), "n": [1, (2.0, None)]}
    buf = io.BytesIO()
    fw.save(obj, buf)
    buf.seek(0)
    _eq(fw.load(buf), obj)
    with open(tmp_path / "f.safetensors", "wb") as fh:
        fw.save(obj, fh)
    with open(tmp_path / "f.safetensors", "rb") as fh:
        _eq(fw.load(fh), obj)
    with pytest.raises(CheckpointError, match="<stream>"):
        fw.load(io.BytesIO(b"\x01\x00"))


def test_save_rejects_unsupported_objects(tmp_path):
    with pytest.raises(TypeError, match="cannot store an object of type object"):
        fw.save({"a": object()}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="dict keys"):
        fw.save({(1, 2): 3}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def test_file_layout_follows_the_format(tmp_path):
    fw.save({"w": fw.ones(2, 3), "b": fw.zeros(3, dtype=fw.float64)}, tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["w"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
    assert header["b"]["dtype"] == "F64" and header["b"]["data_offsets"] == [24, 48]
    assert len(raw) == 8 + n + 48
    assert all(isinstance(v, str) for v in header["__metadata__"].values())


def test_map_location_cpu_and_optimizer_state(tmp_path):
    p = fw.ones(3, requires_grad=True)
    o = fw.optim.Adam([p])
    (p * p).sum().backward()
    o.step()
    fw.save(o.state_dict(), tmp_path / "o.safetensors")
    sd = fw.load(tmp_path / "o.safetensors", map_location="cpu")
    assert sd["state"][0]["step"].item() == 1.0 and sd["state"][0]["step"].shape == ()
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)


def test_loaded_tensors_are_writable_and_independent(tmp_path):
    fw.save({"a": fw.ones(3)}, tmp_path / "a.safetensors")
    a = fw.load(tmp_path / "a.safetensors")["a"]
    a.data[0] = 5  # must not raise (read-only buffer) and must not touch the file
    assert fw.load(tmp_path / "a.safetensors")["a"].numpy()[0] == 1


# -------------------------------------------------------------- compatibility with safetensors


def test_files_interoperate_with_the_safetensors_package(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy", reason="the safetensors package is the oracle")
    sd = {"conv.weight": fw.randn(4, 3, 3, 3), "idx": fw.arange(5), "mask": fw.tensor([True, False]),
          "h": fw.tensor(rng.normal(size=3).astype(np.float16)), "scalar": fw.tensor(2.0, dtype=fw.float64)}
    fw.save(sd, tmp_path / "ours.safetensors")
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert set(theirs) == set(sd)
    for k, v in sd.items():
        assert theirs[k].dtype == v.numpy().dtype
        np.testing.assert_array_equal(theirs[k], v.numpy())

    arrays = {"a": rng.normal(size=(2, 5)).astype(np.float32),
              "b": np.arange(6, dtype=np.int32).reshape(2, 3),
              "c": np.array([True]), "z": np.zeros((0,), np.float64)}
    st.save_file(arrays, str(tmp_path / "theirs.safetensors"), metadata={"format": "np"})
    ours = fw.load(tmp_path / "theirs.safetensors")
    assert set(ours) == set(arrays)
    for k, v in arrays.items():
        assert isinstance(ours[k], fw.Tensor)
        np.testing.assert_array_equal(ours[k].numpy(), v)


# -------------------------------------------------------------- damaged and hostile files


def _write(path, header: dict | bytes, data: bytes = b"", n: int | None = None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if n is None else n) + raw + data)
    return path


GOOD = {"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}


@pytest.mark.parametrize("header,data,n,match", [
    (b"", b"", 0, "header is not valid JSON"),
    (b"{not json", b"", None, "not valid JSON"),
    (b"\xff\xfe", b"", None, "not UTF-8"),
    (b"[1, 2]", b"", None, "must be a JSON object"),
    (GOOD, b"\0" * 4, None, "truncated"),
    (GOOD, b"\0" * 12, None, "bytes of data after the last tensor"),
    ({"t": {"dtype": "X9", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "unknown dtype 'X9'"),
    ({"t": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8, None, "unsupported dtype"),
    ({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, None, "needs 12 bytes"),
    ({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, None, "non-negative"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, None, "begin <= end"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "x": 1}}, b"\0" * 8, None, "exactly"),
    ({"t": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, b"\0" * 8, None, "needs"),
    ({"t": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}}, b"\0" * 8, None,
     "truncated"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "overlap"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, None, "gap"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"k": 1}}, b"\0" * 8,
     None, "__metadata__"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "__metadata__": {"framework.structure": "{bad"}}, b"\0" * 8, None, "structure"),
    ({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "__metadata__": {"framework.structure": '{"__tensor__": "zz"}'}}, b"\0" * 8, None, "missing tensor"),
    (b'{"t": NaN}', b"", None, "not valid JSON"),
])
def test_damaged_files_raise_clear_errors(tmp_path, header, data, n, match):
    path = _write(tmp_path / "bad.safetensors", header, data, n)
    with pytest.raises(CheckpointError, match=match) as e:
        fw.load(path)
    assert "bad.safetensors" in str(e.value)
    assert isinstance(e.value, ValueError) and isinstance(e.value, RuntimeError)


def test_deeply_nested_or_duplicate_json_is_refused(tmp_path):
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(CheckpointError, match="nested too deeply"):
        fw.load(_write(tmp_path / "a.safetensors", deep))
    meta = {"framework.structure": "[" * 100_000 + "]" * 100_000}
    with pytest.raises(CheckpointError, match="nested too deeply"):
        fw.load(_write(tmp_path / "b.safetensors", {"__metadata__": meta}))
    dup = b'{"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "t": {"dtype": "F32", ' \
          b'"shape": [1], "data_offsets": [0, 4]}}'
    with pytest.raises(CheckpointError, match="duplicate key 't'"):
        fw.load(_write(tmp_path / "c.safetensors", dup, b"\0" * 4))


def test_huge_or_lying_header_length_is_refused_before_reading(tmp_path):
    with pytest.raises(CheckpointError, match="exceeds"):
        fw.load(_write(tmp_path / "a.safetensors", b"{}", n=2**62))
    with pytest.raises(CheckpointError, match="larger than the rest of the file"):
        fw.load(_write(tmp_path / "b.safetensors", b"{}", n=1000))


def test_truncated_real_checkpoint_and_short_files(tmp_path):
    fw.save({"w": fw.randn(10, 10)}, tmp_path / "m.safetensors")
    raw = (tmp_path / "m.safetensors").read_bytes()
    for cut in (3, 8, 20, len(raw) - 1):
        (tmp_path / "cut.safetensors").write_bytes(raw[:cut])
        with pytest.raises(CheckpointError):
            fw.load(tmp_path / "cut.safetensors")


def test_a_pickle_payload_is_rejected_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    # A protocol-0 pickle that would call os.system if unpickled; it is only ever bytes here.
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    (tmp_path / "evil.pt").write_bytes(payload)
    with pytest.raises(CheckpointError):
        fw.load(tmp_path / "evil.pt")
    assert not marker.exists()


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        fw.load(tmp_path / "nope.safetensors")


try:
    from hypothesis import given
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover
    given = None

if given is not None:
    _DTYPES = ["float16", "float32", "float64", "int32", "int64", "uint8", "bool"]
    _arrays = st.builds(
        lambda shape, dt, seed: fw.tensor(np.random.default_rng(seed).normal(size=shape) * 50).to(
            getattr(fw, dt)),
        st.lists(st.integers(0, 3), max_size=3).map(tuple), st.sampled_from(_DTYPES), st.integers(0, 99))
    _scalars = (st.none() | st.booleans() | st.integers(-2**62, 2**62) | st.text(max_size=5)
                | st.floats(allow_nan=False))
    _keys = st.text(max_size=4) | st.integers(-5, 5) | st.booleans() | st.none() | st.floats(-2, 2)
    _objs = st.recursive(
        _scalars | _arrays,
        lambda kids: (st.lists(kids, max_size=3) | st.lists(kids, max_size=3).map(tuple)
                      | st.dictionaries(_keys, kids, max_size=3)),
        max_leaves=8)

    @given(obj=_objs)
    def test_random_nested_objects_round_trip_exactly(tmp_path_factory, obj):
        path = tmp_path_factory.mktemp("rt") / "o.safetensors"
        fw.save(obj, path)
        _eq(fw.load(path), obj)

    @given(data=st.data())
    def test_corrupted_bytes_load_or_raise_checkpoint_error(tmp_path_factory, data):
        """Whatever bytes of a real checkpoint are changed, load() succeeds or raises
        CheckpointError: never another exception type, never a crash."""
        d = tmp_path_factory.mktemp("fuzz")
        fw.save({"state": {0: {"step": fw.tensor(2.0), "m": fw.ones(2, 3)}}, "lr": (0.1, [1, None]),
                 "w": fw.arange(4)}, d / "ok.safetensors")
        raw = bytearray((d / "ok.safetensors").read_bytes())
        n = struct.unpack("<Q", raw[:8])[0]
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, 8 + n - 1))  # the length and the JSON header
            raw[i] = data.draw(st.integers(0, 255))
        cut = data.draw(st.none() | st.integers(0, len(raw)))
        (d / "bad.safetensors").write_bytes(bytes(raw[:cut]))
        try:
            fw.load(d / "bad.safetensors")
        except CheckpointError:
            pass


def test_model_and_optimizer_checkpoint_round_trip(tmp_path):
    """A training checkpoint (model with BatchNorm buffers, optimizer, epoch) restores exactly."""
    nn = pytest.importorskip("framework.nn", reason="fw.nn is built separately")

    def make():
        fw.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                             nn.Linear(4 * 5 * 5, 2))

    model = make()
    opt = fw.optim.AdamW(model.parameters(), lr=1e-2)
    x = fw.randn(6, 3, 5, 5)
    for _ in range(3):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    fw.save({"model": model.state_dict(), "optim": opt.state_dict(), "epoch": 3}, tmp_path / "ck.safetensors")
    ck = fw.load(tmp_path / "ck.safetensors")
    assert ck["epoch"] == 3 and ck["model"]["1.num_batches_tracked"].dtype == fw.int64
    model2 = make()
    model2.load_state_dict(ck["model"])
    opt2 = fw.optim.AdamW(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ck["optim"])
    for m, o in ((model, opt), (model2, opt2)):
        o.zero_grad()
        m(x).square().mean().backward()
        o.step()
        m.eval()
    np.testing.assert_array_equal(model(x).detach().numpy(), model2(x).detach().numpy())
