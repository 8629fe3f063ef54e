"""Inference wrapper: frame in, boxes out, with per-stage timing.

``Detector(frame)`` letterboxes an RGB frame to the model size, runs the network under
``framework.no_grad()``, decodes peaks and maps the boxes back to frame pixels.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings

import numpy as np

from .classes import CLASSES
from .data import STRIDE, letterbox, unletterbox_boxes
from .decode import decode, flip_merge
from .metrics import Detections

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
DEFAULT_WEIGHTS = os.path.join(ASSETS, "detector.safetensors")
DEFAULT_CARD = os.path.join(ASSETS, "model_card.json")
_ALIGN = 32  # the network's coarsest stride: input sides must be multiples of it
_MAX_GRAPHS = 8  # CUDA graphs kept, one per input shape (a source of ever-new shapes starts over)


class Detector:
    """A loaded detector.

    Args:
        model: a :class:`apps.perception.model.CenterNet` (set to eval mode here).
        size: model input size in pixels: frames are scaled so that their longer side fits ``size``.
        rect: letterbox each frame into the smallest rectangle of multiples of 32 (the network's
            coarsest stride) that holds it at that scale, as YOLOv5's rectangular inference, instead of
            the full ``size`` x ``size`` square: the same scale and detections, fewer pixels to run
            (a 640 x 480 frame at size 640: 640 x 480 instead of 640 x 640, a quarter less work).
            ``rect=False`` always feeds the square the network was trained on.
        conf: score threshold; nms_iou: class-aware NMS IoU after peak picking (None = off).
        device: "cpu" or "cuda".
        fuse: run a copy of the model with its batch norms folded into the convolutions (same outputs
            to float rounding, one pass fewer over every activation). ``model`` itself is left as it was;
            change its weights after construction and build a new Detector.
        cuda_graph: on a CUDA device, capture the network once per input shape into a CUDA graph
            (:class:`framework.cuda.CUDAGraph`) and replay it: one launch per frame instead of one per
            layer, which is what sets the time of a small network at batch 1. The first frame of each
            shape runs eagerly (kernels compiled and tuned), then is captured. If the capture fails,
            a warning says why and the network runs eagerly from then on.
        rescorer: an :class:`apps.perception.rescore.Rescorer` trained for these weights and this size:
            each detection's ``confidence``, by which evaluation and the COCO export rank boxes (None:
            they rank by score x spread quality).
    Attributes: ``net`` (the module that runs: the fused copy, or ``model``), ``classes`` (names),
        ``last_timing`` {"preprocess", "model", "decode"} in ms.
    """

    rescorer = None  # (see Args)

    def __init__(
        self,
        model,
        size: int = 320,
        conf: float = 0.3,
        nms_iou: float | None = 0.7,
        device: str = "cpu",
        classes: tuple[str, ...] = CLASSES,
        card: dict | None = None,
        fuse: bool = True,
        rect: bool = True,
        cuda_graph: bool = True,
        flip_test: bool = False,
        rescorer=None,
    ):
        import copy

        import framework as fw

        self.fw = fw
        self.model = model.to(device) if device != "cpu" else model
        self.model.eval()
        self.net = copy.deepcopy(self.model).fuse() if fuse and hasattr(self.model, "fuse") else self.model
        self.size, self.conf, self.nms_iou, self.device = size, conf, nms_iou, device
        self.rect = rect
        self.flip_test = flip_test
        self.rescorer = rescorer
        self.classes = tuple(classes)
        self.card = card or {}
        self.last_timing: dict[str, float] = {}
        self.cuda_graph = cuda_graph and device != "cpu"
        self._graphs: dict[tuple, tuple] = {}  # input shape -> (graph, static input, heat, reg)
        # one replay at a time: a graph's input and outputs are fixed buffers (the dashboard shares one
        # Detector between sessions, each in its own thread)
        self._graph_lock = threading.Lock()
        self.graph_error: str | None = None

    def input_shape(self, frame_hw: tuple[int, int]) -> tuple[int, int]:
        """(height, width) of the network input for a frame of (height, width) ``frame_hw``."""
        if not self.rect:
            return self.size, self.size
        h, w = frame_hw
        if h <= 0 or w <= 0:
            raise ValueError(f"empty frame of shape {frame_hw}")
        r = self.size / max(h, w)

        def fit(n):  # the scaled side, rounded up to the stride (never past size: size is a multiple)
            return min(self.size, max(_ALIGN, -(-round(n * r) // _ALIGN) * _ALIGN))

        return fit(h), fit(w)

    def preprocess(
        self, frame: np.ndarray, shape: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, tuple[float, float, float]]:
        """RGB uint8 (H, W, 3) -> float32 (1, 3, h, w) in 0..1, letterbox meta; (h, w) = ``shape`` or
        ``input_shape``. Grayscale (H, W) or (H, W, 1), RGBA and uint16 frames are taken too (see
        :func:`apps.perception.data.letterbox`)."""
        th, tw = shape or self.input_shape(frame.shape[:2])
        img, meta = letterbox(frame, (tw, th))
        x = np.ascontiguousarray(img.transpose(2, 0, 1)[None], dtype=np.float32)
        x *= 1.0 / 255.0
        return x, meta

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on a batch (N, 3, S, S): (heatmap logits, reg) as NumPy arrays; with
        ``flip_test``, the average of the outputs on x and on x mirrored."""
        if self.flip_test:
            return flip_forward(self._network, x, parallel=self.device == "cpu")
        return self._network(x)

    def _network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.cuda_graph and self.graph_error is None:
            with self._graph_lock:
                out = self._replay(np.ascontiguousarray(x, dtype=np.float32))
            if out is not None:
                return out
        with self.fw.no_grad():
            t = self.fw.from_numpy(x)
            if self.device != "cpu":
                t = t.to(self.device)
            heat, reg = self.net(t)
            return _to_numpy(heat), _to_numpy(reg)

    def _replay(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The network's CUDA graph for x's shape (captured on first sight) on x; None, with a warning
        the first time, where no graph can be captured (the caller then runs it eagerly)."""
        if self.graph_error is not None:
            return None
        entry = self._graphs.get(x.shape)
        if entry is None:
            if len(self._graphs) >= _MAX_GRAPHS:
                self._graphs.clear()
            try:
                entry = self._capture(x.shape)
            except RuntimeError as e:
                self.graph_error = str(e)
                warnings.warn(f"Detector: no CUDA graph, the network runs eagerly ({e})", stacklevel=3)
                return None
            self._graphs[x.shape] = entry
        graph, static_in, heat, reg = entry
        static_in.data.set(x)  # host -> the captured input's memory, on the stream the graph replays on
        graph.replay()
        return _to_numpy(heat), _to_numpy(reg)

    def _capture(self, shape: tuple[int, ...]) -> tuple:
        fw = self.fw
        static_in = fw.zeros(shape, device=self.device)
        with fw.no_grad():
            self.net(static_in)  # eagerly first: every kernel compiled and tuned for this shape
            fw.cuda.synchronize()
            graph = fw.cuda.CUDAGraph()
            with fw.cuda.graph(graph):
                heat, reg = self.net(static_in)
        return graph, static_in, heat, reg

    def __call__(self, frame: np.ndarray) -> Detections:
        """Detections for one RGB frame, boxes xyxy in frame pixels."""
        t0 = time.perf_counter()
        x, meta = self.preprocess(frame)
        t1 = time.perf_counter()
        heat, reg = self.forward(x)
        t2 = time.perf_counter()
        d = decode(heat, reg, STRIDE, self.conf, nms_iou=self.nms_iou, features=self.rescorer is not None)[0]
        d = self._rescored(to_frame(d, meta, frame.shape[1], frame.shape[0]))
        t3 = time.perf_counter()
        self.last_timing = dict(preprocess=(t1 - t0) * 1e3, model=(t2 - t1) * 1e3, decode=(t3 - t2) * 1e3)
        return d

    def warmup(self, n: int = 10) -> None:
        """Run the network on a blank square input ``n`` times (buffers, thread pools, caches)."""
        x = np.zeros((1, 3, self.size, self.size), np.float32)
        for _ in range(n):
            self.forward(x)

    def detect_batch(self, frames: list[np.ndarray], conf: float | None = None) -> list[Detections]:
        """Detections for several frames (one forward pass; frames of different shapes go in as
        squares, which any frame fits)."""
        shapes = {self.input_shape(f.shape[:2]) for f in frames}
        shape = shapes.pop() if len(shapes) == 1 else (self.size, self.size)
        xs, metas = zip(*(self.preprocess(f, shape) for f in frames))
        heat, reg = self.forward(np.concatenate(xs))
        dets = decode(heat, reg, STRIDE, self.conf if conf is None else conf, nms_iou=self.nms_iou,
                      features=self.rescorer is not None)
        return [self._rescored(to_frame(d, m, f.shape[1], f.shape[0]))
                for d, m, f in zip(dets, metas, frames)]

    def _rescored(self, d: Detections) -> Detections:
        """``d`` with the rescorer's confidence (the ranking evaluation uses), where there is one."""
        return d if self.rescorer is None else self.rescorer(d)


def flip_forward(network, x: np.ndarray, parallel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``network`` (a batch (N, 3, H, W) -> (heat, reg) NumPy arrays) on x and on x mirrored left to right,
    the outputs merged by :func:`apps.perception.decode.flip_merge`: in one batch of 2N, or with
    ``parallel`` where the process is set up for it (``framework.utils.parallel.worthwhile``: two or more
    framework threads, BLAS on one), as two calls at once (21 ms against 33 ms for the pair at 640x480 on
    2 cores)."""
    from framework.utils.parallel import parallel_map, worthwhile

    n = len(x)
    if parallel and worthwhile():
        (heat, reg), (heat_m, reg_m) = parallel_map(network, [x, np.ascontiguousarray(x[..., ::-1])])
        return flip_merge(heat, reg, heat_m, reg_m)
    heat, reg = network(np.concatenate([x, x[..., ::-1]]))
    return flip_merge(heat[:n], reg[:n], heat[n:], reg[n:])


def to_frame(d: Detections, meta: tuple[float, float, float], width: int, height: int) -> Detections:
    """Decoded detections in letterboxed pixels -> frame pixels, clipped to the frame; boxes left under
    one pixel wide or tall (those wholly in the letterbox padding) are dropped. The one post-processing of
    the Detector (single frames and batches) and of the evaluation on caches. Detections decoded with
    features get the rest of the rescorer's features here (:func:`apps.perception.rescore.frame_features`)."""
    boxes = unletterbox_boxes(d.boxes, meta, width, height)
    ok = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
    out = d.select(ok)
    out.boxes = boxes[ok]
    if out.features is not None:
        from .rescore import frame_features

        r, px, py = meta
        unclipped = (d.boxes[ok] - np.array([px, py, px, py], np.float32)) / r
        out.features = frame_features(out.features, unclipped, out.boxes, out.classes, width, height)
    return out


def _to_numpy(t) -> np.ndarray:
    """A tensor as a host array, from whichever device it lives on (network outputs, weights)."""
    return t.detach().cpu().numpy()


def load_model(
    weights: str = DEFAULT_WEIGHTS,
    card: str | None = None,
    device: str = "cpu",
    conf: float | None = None,
    flip_test: bool = False,
    rescore: bool = True,
) -> Detector:
    """A :class:`Detector` from a safetensors file and its model card (defaults: the committed model);
    ``flip_test``: see :class:`Detector`. ``rescore``: load the rescorer the card names (``rescorer.file``,
    beside the weights) when it was trained for these weights and input size; if it was not, a warning
    says so and boxes rank by score x quality."""
    import framework as fw

    from .model import CenterNet

    if not os.path.exists(weights):
        raise FileNotFoundError(
            f"weights {weights!r} not found (train with `python -m apps.perception train`)"
        )
    card_path = card or os.path.join(os.path.dirname(weights), "model_card.json")
    meta = {}
    if os.path.exists(card_path):
        with open(card_path) as f:
            meta = json.load(f)
    arch = meta.get("architecture", {})
    model = CenterNet(num_classes=len(meta.get("classes", CLASSES)), width=arch.get("width", 1.0))
    state = fw.load(weights)
    model.load_state_dict(state)
    size = int(meta.get("input_size", 320))
    rescorer = None
    name = (meta.get("rescorer") or {}).get("file") if rescore else None
    if name:
        from . import rescore as _rescore

        path = os.path.join(os.path.dirname(weights), name)
        try:
            rescorer = _rescore.load(path, weights=weights, input_size=size)
        except (OSError, ValueError) as e:
            warnings.warn(f"rescorer not used: {e}", stacklevel=2)
    return Detector(
        model,
        size=size,
        conf=conf if conf is not None else float(meta.get("default_conf", 0.3)),
        device=device,
        classes=tuple(meta.get("classes", CLASSES)),
        card=meta,
        flip_test=flip_test,
        rescorer=rescorer,
    )
