"""The Tensor: an array (NumPy or CuPy) with an optional place in the autograd graph."""

from __future__ import annotations

import builtins
import json
import numbers
import sys
import threading

import numpy as np

from . import dtypes as _dt
from .autograd import is_grad_enabled
from .backend import CPU, device, device_of, get_array_module, to_device
from .backend import device as _device  # (for functions whose 'device' argument shadows it)


class Tensor:
    """A multi-dimensional array that records the operations applied to it.

    Created through the factory functions (``framework.tensor``, ``zeros``, ...) or by operations.
    """

    # _view_src: (base, view Function) of a view made outside the graph (its base needs no grad), so
    # that an in-place op writing a tensor that requires grad into it can still put the base in the graph
    __slots__ = ("data", "_requires_grad", "_grad", "grad_fn", "_out_idx", "_vc", "_hooks",
                 "_retains_grad", "__weakref__", "_is_param", "_view_src", "_view_ver")

    __array_priority__ = 1000  # NumPy scalars defer to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False):
        self.data = data
        self._requires_grad = requires_grad
        self._grad = None
        self.grad_fn = None
        self._out_idx = 0
        self._vc = [0]
        self._hooks = []
        self._retains_grad = False
        self._view_ver = None  # for a view in the graph: its base's version its grad_fn was made at

    @classmethod
    def _from_op(cls, data, fn, idx):
        t = cls.__new__(cls)
        t.data = data
        t._requires_grad = True
        t._grad = None
        t.grad_fn = fn
        t._out_idx = idx
        t._vc = [0]
        t._hooks = []
        t._retains_grad = False
        t._view_ver = None
        return t

    # ------------------------------------------------------------------ attributes
    @property
    def shape(self):
        return Size(self.data.shape)

    @property
    def dtype(self):
        return _dt.from_numpy_dtype(self.data.dtype)

    @property
    def device(self):
        return device_of(self.data)

    @property
    def is_cuda(self):
        return self.device.type == "cuda"

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if self.grad_fn is not None:
            raise RuntimeError(_NON_LEAF_FLAG)
        self.requires_grad_(value)

    @property
    def grad(self):
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"assigned grad expected to be a Tensor or None but got "
                                f"{type(value).__name__}")
            if value.data.shape != self.data.shape:
                raise RuntimeError(f"attempting to assign a gradient of size {list(value.shape)} to a "
                                   f"tensor of size {list(self.shape)}. Please ensure that the gradient "
                                   "and the tensor are the same size")
            if value.data.dtype != self.data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: {value.dtype} for a "
                                   f"tensor of type {self.dtype}")
        self._grad = value

    @property
    def is_leaf(self):
        return self.grad_fn is None

    @property
    def _version(self):
        return self._vc[0]

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def size(self, dim=None):
        return self.shape if dim is None else self.data.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    def element_size(self):
        return self.data.itemsize

    nelement = numel
    ndimension = dim

    @property
    def itemsize(self):
        return self.data.itemsize

    @property
    def nbytes(self):
        return int(self.data.nbytes)

    def is_contiguous(self, memory_format=None):
        """Whether the elements lie in row-major order without gaps (``view`` needs this)."""
        return bool(self.data.flags.c_contiguous)

    def stride(self, dim=None):
        """Strides in elements (NumPy's are in bytes), as ``torch.Tensor.stride``."""
        st = tuple(int(b) // self.data.itemsize for b in self.data.strides)
        return st if dim is None else st[dim]

    def data_ptr(self):
        a = self.data
        return int(a.__array_interface__["data"][0]) if type(a) is np.ndarray else int(a.data.ptr)

    def is_floating_point(self):
        return self.data.dtype.kind == "f"

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def item(self):
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.reshape(()).item()

    def numpy(self):
        if self.requires_grad and is_grad_enabled() and self.grad_fn is not None:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use "
                               "tensor.detach().numpy() instead.")
        if self.device.type != "cpu":
            raise TypeError("can't convert a cuda tensor to numpy: use Tensor.cpu() first")
        return self.data

    def tolist(self):
        return to_device(self.data, CPU).tolist()

    def __array__(self, dtype=None, copy=None):
        a = to_device(self.data, CPU)
        return a if dtype is None else a.astype(dtype)

    def __repr__(self):
        a = to_device(self.data, CPU)
        body = _array_string(a)
        extras = []
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if a.dtype not in (np.float32, np.int64, np.bool_, np.complex64):
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{type(self.grad_fn).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
        return builtins.bool(self.data.reshape(()).item())

    def __float__(self):
        return builtins.float(self.item())

    def __int__(self):
        return builtins.int(self.item())

    def __index__(self):
        if self.data.dtype.kind not in "iub" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return builtins.int(self.item())

    def __hash__(self):
        return id(self)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    # ------------------------------------------------------------------ autograd
    def requires_grad_(self, requires_grad: bool = True):
        if not self.is_leaf and not requires_grad:
            raise RuntimeError(_NON_LEAF_FLAG)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, "
                               f"got {self.dtype}")
        self._requires_grad = requires_grad
        return self

    def detach(self):
        t = Tensor(self.data)
        t._vc = self._vc  # shares storage, hence the version counter
        return t

    def detach_(self):
        self.grad_fn = None
        self._requires_grad = False
        return self

    def retain_grad(self):
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is not None:
            self._retains_grad = True

    @property
    def retains_grad(self):
        return self._retains_grad

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; it may return a new one."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        self._hooks.append(hook)

        class _Handle:
            def remove(_self):
                if hook in self._hooks:
                    self._hooks.remove(hook)

        return _Handle()

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(self)`` after each backward pass has accumulated this leaf's ``.grad`` (an optimizer
        step per parameter during the backward, say), as PyTorch's. Returns a handle with ``remove()``."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        from .autograd import _add_post_accumulate_hook

        hooks = _add_post_accumulate_hook(self, hook)

        class _Handle:
            def remove(_self):
                if hook in hooks:
                    hooks.remove(hook)

        return _Handle()

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        from .autograd import backward

        backward([self], [gradient], retain_graph, create_graph, inputs)

    def _own(self):
        """Make sure this tensor's array is not shared with anything (used for .grad)."""
        xp = get_array_module(self.data)
        if not self.data.flags.c_contiguous or not self.data.flags.owndata:
            # (not ascontiguousarray: it turns a 0-d array into a 1-d one)
            self.data = xp.array(self.data, copy=True, order="C")
        return self

    # ------------------------------------------------------------------ conversion
    def to(self, *args, **kwargs):
        """``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other)``; a no-op returns self."""
        copy = kwargs.pop("copy", False)
        dev, dt = parse_to_args(args, kwargs)
        out = self
        if dev is not None and device(dev) != self.device:
            from .ops.basic import ToDevice

            out = ToDevice(target=device(dev))(out)
        if dt is not None and dt.np != out.data.dtype:
            from .ops.basic import Cast

            out = Cast(dtype=dt.np)(out)
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device_index=None):
        return self.to(device("cuda", device_index or 0))

    def type(self, dtype=None):
        if dtype is None:
            return f"framework.{self.dtype.name}"
        return self.to(dtype)

    def float(self):
        return self.to(_dt.float32)

    def double(self):
        return self.to(_dt.float64)

    def half(self):
        return self.to(_dt.float16)

    def long(self):
        return self.to(_dt.int64)

    def int(self):
        return self.to(_dt.int32)

    def bool(self):
        return self.to(_dt.bool)

    def byte(self):
        return self.to(_dt.uint8)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return ones(*size, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)


_NON_LEAF_FLAG = ("you can only change requires_grad flags of leaf variables. If you want to use a computed "
                  "variable in a subgraph that doesn't require differentiation use "
                  "var_no_grad = var.detach().")


def parse_to_args(args, kwargs):
    """``(device, dtype)`` from the arguments of ``Tensor.to`` / ``Module.to`` (either may be None):
    ``to(device)``, ``to(dtype)``, ``to(device, dtype)``, ``to(other_tensor)``, or as keywords."""
    kwargs = dict(kwargs)
    dev, dt = kwargs.pop("device", None), kwargs.pop("dtype", None)
    kwargs.pop("non_blocking", None)
    if kwargs:
        raise TypeError(f"to() got unexpected arguments {sorted(kwargs)}")
    for a in args:
        if isinstance(a, _dt.dtype):
            dt = a
        elif isinstance(a, Tensor):
            dev, dt = a.device, a.dtype
        elif a is not None:
            dev = a
    return dev, dt


class Size(tuple):
    """``torch.Size``: a tuple of ints."""

    def numel(self):
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self):
        return f"framework.Size({list(self)})"


# ---------------------------------------------------------------------- random state

def _fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**63))


_initial_seed = _fresh_seed()  # (what initial_seed() reports until manual_seed: the seed _rng started from)
_rng = np.random.default_rng(_initial_seed)
# A thread may draw from its own generator instead of the global one: DataLoader worker threads
# get one per batch, seeded from the loader's base seed and the batch number, so that what a
# dataset draws does not depend on which thread ran which batch first.
_thread = threading.local()


def manual_seed(seed: int):
    """Seed the framework's global generator (CPU, and CuPy's when present)."""
    global _rng, _initial_seed
    _rng = np.random.default_rng(seed)
    _initial_seed = int(seed)
    from . import backend

    if backend._CUDA_OK:
        backend._cupy.random.seed(seed)
    return Generator().manual_seed(seed)


def seed() -> int:
    s = _fresh_seed()
    manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed the global generator started from: the last ``manual_seed`` / ``seed``, else the random
    one drawn at import, as ``torch.initial_seed``."""
    return _initial_seed


class Generator:
    """A random generator, as ``torch.Generator``: ``manual_seed(s)`` then pass it to samplers;
    ``get_state()`` / ``set_state(t)`` save and restore where its stream stands."""

    def __init__(self, device="cpu"):
        self.rng = np.random.default_rng()
        self._seed = None

    def manual_seed(self, seed: int):
        self._seed = seed
        self.rng = np.random.default_rng(seed)
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self) -> Tensor:
        return _encode_state(self.rng)

    def set_state(self, new_state) -> Generator:
        self.rng = _decode_state(new_state)
        return self


def _gen(generator):
    return generator.rng if generator is not None else default_generator()


def default_generator():
    """The generator that draws without an explicit ``generator``: the global one, or the one the
    current thread was given (a DataLoader worker's, for the batch it is loading)."""
    return getattr(_thread, "rng", None) or _rng


def _encode_state(rng) -> Tensor:
    """A generator's state as a uint8 tensor (JSON text of NumPy's bit-generator state: nothing
    pickled, so a saved state can be stored with ``fw.save`` and restored safely)."""
    st = rng.bit_generator.state
    text = json.dumps(st, sort_keys=True, default=int)
    return Tensor(np.frombuffer(text.encode("ascii"), dtype=np.uint8).copy())


def _decode_state(state) -> np.random.Generator:
    a = state.data if isinstance(state, Tensor) else np.asarray(state)
    if a.dtype != np.uint8 or a.ndim != 1:
        raise TypeError(f"set_state: expected the 1-D uint8 tensor that get_state returns, got "
                        f"{a.dtype} of shape {tuple(a.shape)}")
    try:
        st = json.loads(bytes(np.asarray(a)).decode("ascii"))
        bitgen = getattr(np.random, st["bit_generator"])
        if not (isinstance(bitgen, type) and issubclass(bitgen, np.random.BitGenerator)):
            raise ValueError(f"unknown bit generator {st['bit_generator']!r}")
        bg = bitgen()
        bg.state = st
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise ValueError(f"set_state: not a generator state saved by get_state ({e})") from None
    return np.random.Generator(bg)


def get_rng_state() -> Tensor:
    """The global generator's state (``torch.get_rng_state``), for ``set_rng_state``."""
    return _encode_state(_rng)


def set_rng_state(new_state) -> None:
    """Restore the global generator to a state from ``get_rng_state``: the draws that follow repeat."""
    global _rng
    _rng = _decode_state(new_state)


# ---------------------------------------------------------------------- factories


def _dtype_np(dtype, default=None):
    if dtype is None:
        return default
    if isinstance(dtype, _dt.dtype):
        return dtype.np
    return np.dtype(dtype)


def _place(a, dev, requires_grad):
    if dev is not None:
        a = to_device(a, device(dev))
    t = Tensor(a)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list, Size)):
        return tuple(size[0])
    return tuple(size)


_PROFILES = {"default": dict(precision=4, threshold=1000, edgeitems=3, linewidth=80),
             "short": dict(precision=2, threshold=1000, edgeitems=2, linewidth=80),
             "full": dict(precision=4, threshold=sys.maxsize, edgeitems=3, linewidth=80)}
_PRINT = dict(_PROFILES["default"], sci_mode=None)


def set_printoptions(precision=None, threshold=None, edgeitems=None, linewidth=None, profile=None,
                     sci_mode=None):
    """How tensors print, as ``torch.set_printoptions``: digits after the point, the element count above
    which a summary (``edgeitems`` per end) is shown, the line width, a ``profile`` ("default",
    "short", "full") to start from, and ``sci_mode`` (True: always scientific, False: never, None: auto)."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: unknown profile {profile!r} (expected one of "
                             f"{list(_PROFILES)})")
        _PRINT.update(_PROFILES[profile])
    for key, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                       ("linewidth", linewidth)):
        if value is not None:
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"set_printoptions: {key} must be a non-negative integer, got {value!r}")
            _PRINT[key] = int(value)
    _PRINT["sci_mode"] = sci_mode


def _array_string(a) -> str:
    o = _PRINT
    fmt = None
    if o["sci_mode"] and a.dtype.kind in "fc":
        p = o["precision"]
        fmt = {"float_kind": lambda v: f"{v:.{p}e}"}
    return np.array2string(a, separator=", ", precision=o["precision"], threshold=o["threshold"],
                           edgeitems=o["edgeitems"], max_line_width=o["linewidth"], prefix="tensor(",
                           suppress_small=o["sci_mode"] is False, formatter=fmt)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor that copies ``data`` (nested lists, scalars, arrays or a Tensor)."""
    if isinstance(data, Tensor):
        a = data.data.copy()
    elif isinstance(data, np.generic):  # NumPy scalars keep their dtype, as in PyTorch
        a = np.array(data)
    elif get_array_module(data) is not np or isinstance(data, np.ndarray):
        a = data.copy()
    else:
        a = np.array(data)
        if dtype is None:
            if a.dtype.kind == "f":
                a = a.astype(_dt.get_default_dtype().np)
            elif a.dtype.kind in "iu":
                a = a.astype(np.int64)
            elif a.dtype.kind == "c":  # Python complex numbers: the default float's complex dtype
                a = a.astype(_dt.default_complex_np())
            elif a.dtype.kind != "b":
                raise TypeError(f"can't convert {type(data).__name__} of dtype {a.dtype} to a tensor")
    if dtype is not None:
        a = a.astype(_dtype_np(dtype), copy=False)
    return _place(a, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """``data`` as a tensor, sharing memory where it can (a Tensor, or a NumPy array whose dtype is
    kept on the CPU, as ``torch.as_tensor``); otherwise a copy."""
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    if (isinstance(data, np.ndarray) and data.dtype in _dt._BY_NP
            and (dtype is None or _dtype_np(dtype) == data.dtype)
            and (device is None or _device(device).type == "cpu")):
        return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(a: np.ndarray):
    """A tensor sharing memory with the NumPy array ``a``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(a).__name__})")
    _dt.from_numpy_dtype(a.dtype)
    return Tensor(a)


def _xp_for(dev):
    if dev is None or device(dev).type == "cpu":
        return np, None
    from .backend import cupy_module

    return cupy_module(), device(dev)


def _filled(fill, size, dtype, device_, requires_grad, default=None):
    size = _size(size)
    dt = _dtype_np(dtype, default if default is not None else _dt.get_default_dtype().np)
    xp, d = _xp_for(device_)
    if d is not None:
        with xp.cuda.Device(d.index):
            a = xp.full(size, fill, dtype=dt)
    else:
        a = np.full(size, fill, dtype=dt)
    return _place(a, None, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _filled(0, size, dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _filled(0, size, dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        if isinstance(fill_value, builtins.bool):
            dtype = _dt.bool
        elif isinstance(fill_value, numbers.Integral):
            dtype = _dt.int64
        elif isinstance(fill_value, builtins.complex):
            dtype = _dt.from_numpy_dtype(_dt.default_complex_np())
    return _filled(fill_value, (size,) if isinstance(size, builtins.int) else size, dtype, device,
                   requires_grad)


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, device=device or t.device,
                requires_grad=requires_grad)


def empty_like(t, dtype=None, device=None, requires_grad=False):
    return zeros_like(t, dtype, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    start, end, step = (v.item() if isinstance(v, Tensor) else v for v in (start, end, step))
    if end is None:
        start, end = 0, start
    if dtype is None:
        ints = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = _dt.int64 if ints else _dt.get_default_dtype()
    a = np.arange(start, end, step, dtype=_dtype_np(dtype))
    return _place(a, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    a = np.linspace(start, end, steps, dtype=np.float64).astype(
        _dtype_np(dtype, _dt.get_default_dtype().np))
    return _place(a, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    a = np.eye(n, m, dtype=_dtype_np(dtype, _dt.get_default_dtype().np))
    return _place(a, device, requires_grad)


def _complex_draw(draw, shape, dt, scale=1.0):
    """Real and imaginary parts drawn independently (``draw(shape)``), as PyTorch's complex rand/randn."""
    parts = draw(tuple(shape) + (2,)) * scale
    return (parts[..., 0] + 1j * parts[..., 1]).astype(dt)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1); a complex dtype draws its real and imaginary parts so."""
    dt = _dtype_np(dtype, _dt.get_default_dtype().np)
    g = _gen(generator)
    a = _complex_draw(g.random, _size(size), dt) if dt.kind == "c" else g.random(_size(size)).astype(dt)
    return _place(a, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal; a complex dtype gives E|z|^2 = 1 (parts of variance 1/2 each), as PyTorch."""
    dt = _dtype_np(dtype, _dt.get_default_dtype().np)
    g = _gen(generator)
    if dt.kind == "c":
        a = _complex_draw(g.standard_normal, _size(size), dt, scale=np.sqrt(0.5))
    else:
        a = g.standard_normal(_size(size)).astype(dt)
    return _place(a, device, requires_grad)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size), as PyTorch
        high, size = None, high
    if high is None:
        low, high = 0, low
    if size is None:
        raise TypeError("randint() missing required argument 'size'")
    a = _gen(generator).integers(low, high, size=tuple(size)).astype(_dtype_np(dtype, np.int64))
    return _place(a, device, requires_grad)


def randperm(n, generator=None, dtype=None, device=None):
    a = _gen(generator).permutation(n).astype(_dtype_np(dtype, np.int64))
    return _place(a, device, False)


def rand_like(t, dtype=None, device=None, requires_grad=False):
    return rand(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def randn_like(t, dtype=None, device=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, device=device or t.device, requires_grad=requires_grad)


def normal(mean, std, size, generator=None, dtype=None, device=None):
    a = _gen(generator).normal(mean, std, size=tuple(size)).astype(
        _dtype_np(dtype, _dt.get_default_dtype().np))
    return _place(a, device, False)


def is_tensor(obj) -> builtins.bool:
    return isinstance(obj, Tensor)
