"""framework: a define-by-run deep-learning framework on NumPy (CPU) and CuPy (CUDA).

The API follows PyTorch's names and semantics: ``import framework as fw`` then ``fw.tensor``,
``fw.nn.Conv2d``, ``fw.optim.AdamW``...
"""

from . import autograd
from .autograd import (enable_grad, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad,
                       set_grad_enabled)
from .backend import (are_deterministic_algorithms_enabled, device,
                      is_deterministic_algorithms_warn_only_enabled, use_deterministic_algorithms)
from .dtypes import (bool, cdouble, cfloat, complex64, complex128, double, dtype, float, float16, float32,
                     float64, get_default_dtype, half, int, int8, int16, int32, int64, long,
                     set_default_dtype, uint8)
from .tensor import (Generator, Size, Tensor, arange, as_tensor, empty, empty_like, eye, from_numpy,
                     full, full_like, get_rng_state, initial_seed, is_tensor, linspace, manual_seed, normal,
                     ones, ones_like, rand, rand_like, randint, randn, randn_like, randperm, seed,
                     set_printoptions, set_rng_state, tensor, zeros, zeros_like)
from . import ops  # noqa: E402  (binds Tensor methods)
from .ops import *  # noqa: F401,F403,E402
from .ops import all_ as all  # noqa: E402
from .ops import any_ as any  # noqa: E402
from .ops import max_ as max  # noqa: E402
from .ops import min_ as min  # noqa: E402
from .ops import sum_ as sum  # noqa: E402
from . import data, linalg, nn, optim  # noqa: E402  (fw.nn, as torch.nn after `import torch`)
from .serialization import load, save  # noqa: E402
from . import amp, backends, cuda  # noqa: E402  (fw.cuda, fw.amp, fw.backends)
from .amp import autocast  # noqa: E402
from . import testing  # noqa: E402  (fw.testing.gradcheck / gradgradcheck)
from . import func  # noqa: E402  (fw.func, as torch.func)
from . import special  # noqa: E402  (fw.special, as torch.special)
from . import fft  # noqa: E402  (fw.fft, as torch.fft)
from . import utils  # noqa: E402  (fw.utils.checkpoint; fw.utils.data is fw.data)
from .utils.parallel import get_num_threads, set_num_threads  # noqa: E402  (as torch's)
from . import distributions  # noqa: E402  (fw.distributions, as torch.distributions)

__version__ = "0.1.0"
