"""Multi-object tracking metrics on labelled video: CLEAR MOT, identity scores, trajectory coverage.

- **CLEAR MOT** (Bernardin & Stiefelhagen 2008). In each frame, ground-truth objects and hypotheses
  (the tracker's boxes) may pair when their IoU is at least ``iou_threshold``. A pair matched before
  stays matched while it still overlaps that much; the others are paired by an assignment that first
  maximises the number of pairs, then minimises the summed 1 - IoU. A match whose object was last
  matched to another track is an identity switch. MOTA = 1 - (misses + false positives + switches) /
  objects. MOTP is reported as the matches' mean IoU (py-motmetrics reports 1 minus it).
- **Identity scores** (Ristani et al. 2016). Each ground-truth trajectory is paired with at most one
  track for the whole video: the pairing that maximises IDTP, the frames in which a pair overlaps by
  the threshold. IDF1 = 2 IDTP / (objects + hypotheses), IDP = IDTP / hypotheses, IDR = IDTP / objects.
- **HOTA** (Luiten et al. 2021): for each localisation threshold alpha = 0.05, 0.10, ..., 0.95, the
  geometric mean of detection accuracy (DetA = TP / (TP + FN + FP)) and association accuracy (AssA, the
  matches' mean Jaccard index of their trajectory pair), with per-frame matches chosen to favour pairs
  that align over the whole video; HOTA, DetA, AssA and LocA (mean IoU of the matches) are the means
  over alpha. It does not use ``iou_threshold``. The counting follows TrackEval's, the tests' oracle.
- **Coverage** (Li et al. 2009). A trajectory matched in >= 80 % of the frames it is present in is
  mostly tracked, in < 20 % mostly lost, otherwise partially tracked. A fragmentation is an
  interruption of its matching: matched, then missed, then matched again.
- **Ignored objects** (``ignore``: too occluded or too small to label, KITTI's DontCare). A track on
  one is neither a hit nor a false positive, and the object is never a miss. As MOTChallenge treats
  distractors, hypotheses assigned to an ignored object (IoU at least the threshold, regardless of
  class) are removed before the frame is scored.

With ``class_aware`` (the default) a hypothesis pairs only with objects of its class in that frame. The
per-class scores come from scoring each class alone.

The counting follows py-motmetrics (``num_switches``, ``num_fragmentations``, ``idf1``, ...), which the
tests use as the oracle.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .classes import CLASSES
from .metrics import box_iou

METRICS = (
    "hota", "deta", "assa", "loca", "mota", "motp_iou", "idf1", "idp", "idr", "precision", "recall",
    "objects", "hypotheses", "matches", "misses", "false_positives", "id_switches", "fragmentations",
    "gt_tracks", "mostly_tracked", "partially_tracked", "mostly_lost", "tracks",
)


@dataclass
class TrackFrame:
    """The boxes of one frame: ``ids`` (N,) identities, ``boxes`` (N, 4) x1 y1 x2 y2 pixels, ``classes``
    (N,) class ids, ``ignore`` (N,) bool (ground truth only: objects that count neither way)."""

    ids: np.ndarray
    boxes: np.ndarray
    classes: np.ndarray
    ignore: np.ndarray | None = None

    def __post_init__(self):
        self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.classes = np.asarray(self.classes, np.int64).reshape(-1)
        n = len(self.ids)
        self.ignore = np.zeros(n, bool) if self.ignore is None else np.asarray(self.ignore, bool).reshape(-1)
        if not (len(self.boxes) == len(self.classes) == len(self.ignore) == n):
            raise ValueError(
                f"TrackFrame: {n} ids, {len(self.boxes)} boxes, {len(self.classes)} classes and "
                f"{len(self.ignore)} ignore flags: one of each per object"
            )
        if len(np.unique(self.ids)) != n:
            raise ValueError(f"TrackFrame: an id appears twice in one frame: {sorted(self.ids.tolist())}")
        if not np.isfinite(self.boxes).all():
            raise ValueError("TrackFrame: a box has a non-finite coordinate")

    def subset(self, keep: np.ndarray) -> TrackFrame:
        return TrackFrame(self.ids[keep], self.boxes[keep], self.classes[keep], self.ignore[keep])


def frame_from_tracks(tracks) -> TrackFrame:
    """A hypothesis frame from the tracker's output (objects with ``track_id``, ``box`` and ``cls``)."""
    return TrackFrame(
        [t.track_id for t in tracks], [np.asarray(t.box, np.float64) for t in tracks], [t.cls for t in tracks]
    )


class TrackWriter:
    """Writes the tracks of each frame as they come, in MOTChallenge's results format (``fmt="mot"``:
    ``frame,id,left,top,width,height,score,-1,-1,-1``, frames from 1) or KITTI tracking's (``"kitti"``:
    ``frame track_id type -1 -1 -10 left top right bottom -1 -1 -1 -1000 -1000 -1000 -10 score``, frames
    from 0, our class names with spaces and slashes as underscores). Both read back with
    :func:`load_track_labels` (MOTChallenge's format has no class: its rows read back as pedestrians)
    and with those benchmarks' own tools. A context manager."""

    FORMATS = ("mot", "kitti")

    def __init__(self, path: str, fmt: str = "mot", classes=CLASSES):
        if fmt not in self.FORMATS:
            raise ValueError(f"track format must be one of {', '.join(self.FORMATS)}, got {fmt!r}")
        self.fmt, self.classes = fmt, list(classes)
        self._f = open(path, "w")

    def write(self, frame: int, tracks) -> None:
        """The tracks (with ``track_id``, ``box`` xyxy, ``cls``, ``score``) of video frame ``frame``."""
        for t in tracks:
            x1, y1, x2, y2 = (float(v) for v in t.box)
            if self.fmt == "mot":
                row = (f"{frame + 1},{t.track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                       f"{t.score:.4f},-1,-1,-1")
            else:
                name = self.classes[t.cls].replace(" ", "_").replace("/", "_")
                row = (f"{frame} {t.track_id} {name} -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
                       f"-1 -1 -1 -1000 -1000 -1000 -10 {t.score:.4f}")
            self._f.write(row + "\n")
        self._f.flush()  # a live run stopped at any moment keeps what it wrote

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def load_track_labels(path: str, classes=CLASSES, n_frames: int | None = None,
                      truncate: bool = False) -> list[TrackFrame]:
    """The per-frame ground truth of a clip; frame k of the list is frame k of the video. Formats:

    - the JSON that ``synth --video`` writes beside a clip (``*_labels.json``): ``{"classes": [...],
      "frames": [{"frame": k, "objects": [{"bbox", "cls", "track_id", "ignore"}]}]}``, every frame listed;
    - KITTI tracking ``label_02/NNNN.txt``: ``frame track_id type truncated occluded alpha left top right
      bottom h w l x y z rotation_y`` per line, frames from 0. Types map as for KITTI detection (Van to
      car, Tram to truck/bus, Person(_sitting) to pedestrian, Misc dropped); DontCare lines are ignored;
    - MOTChallenge ``gt.txt``: ``frame,id,left,top,width,height,consider,class,visibility``, frames from 1.
      Pedestrians (class 1) count; persons on a vehicle, static persons, distractors and reflections
      (classes 2, 7, 8, 12) are ignore regions, as MOTChallenge's evaluation treats them; lines whose
      ``consider`` flag is 0 and all other classes are dropped. Lines without a class (MOT15's 10 fields,
      or 6-7) are pedestrians.

    The text formats list only the frames that have objects: the list runs to the last of them, or to
    ``n_frames`` when given. A label beyond ``n_frames`` is an error, or dropped with ``truncate`` (the
    video was cut short). A JSON file must have exactly ``n_frames`` frames (at least, with ``truncate``).
    Raises ValueError naming the file, line or frame and what is wrong."""
    return read_track_labels(path, classes).fit(n_frames, truncate)


@dataclass
class TrackLabels:
    """A labels file as read (:func:`read_track_labels`): its frames, and whether the format lists every
    frame of the clip (the JSON) or only those with objects (the text formats)."""

    path: str
    frames: list
    complete: bool

    def fit(self, n_frames: int | None = None, truncate: bool = False) -> list[TrackFrame]:
        """The frames of a video of ``n_frames`` (see :func:`load_track_labels`)."""
        frames, path = self.frames, self.path
        if n_frames is None:
            return list(frames)
        if self.complete:
            if len(frames) < n_frames or (len(frames) > n_frames and not truncate):
                raise ValueError(f"{path} has {len(frames)} frames of labels but the video has {n_frames} "
                                 "frames (is it the labels file of this clip?)")
            return frames[:n_frames]
        if len(frames) > n_frames and not truncate:
            raise ValueError(f"{path} labels frame {len(frames) - 1} but the video has only {n_frames} "
                             "frames (from 0)")
        empty = TrackFrame([], [], [])
        return frames[:n_frames] + [empty] * (n_frames - len(frames))


def read_track_labels(path: str, classes=CLASSES) -> TrackLabels:
    """Parse a labels file once (formats: :func:`load_track_labels`); ``.fit(n)`` fits it to a video."""
    if path.lower().endswith(".json"):
        return TrackLabels(path, _load_synth_json(path, classes), True)
    rows = _load_track_txt(path)  # frame -> [(id, box, class or "ignore")]
    out = []
    for k in range(max(rows, default=-1) + 1):
        objs = rows.get(k, [])
        ign = [c == "ignore" for _, _, c in objs]
        # ignore regions have no identity (KITTI's DontCare is track -1): give each its own negative id
        ids = [-1 - j if g else i for j, ((i, _, _), g) in enumerate(zip(objs, ign))]
        cls = [0 if g else c for (_, _, c), g in zip(objs, ign)]
        out.append(TrackFrame(ids, [b for _, b, _ in objs], cls, ign))
    return TrackLabels(path, out, False)


def _load_synth_json(path: str, classes) -> list[TrackFrame]:
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("frames"), list):
        raise ValueError(f"{path}: expected an object with a 'frames' list (the labels of synth --video)")
    names = doc.get("classes")
    if names is not None and list(names) != list(classes):
        raise ValueError(f"{path}: its classes {list(names)} are not the detector's {list(classes)}")
    out = []
    for k, fr in enumerate(doc["frames"]):
        if not isinstance(fr, dict) or fr.get("frame", k) != k or not isinstance(fr.get("objects"), list):
            raise ValueError(f"{path}: frames[{k}] must be {{'frame': {k}, 'objects': [...]}}")
        try:
            objs = fr["objects"]
            ids = [int(o["track_id"]) for o in objs]
            boxes = np.array([[float(v) for v in o["bbox"]] for o in objs], np.float64).reshape(-1, 4)
            cls = [int(o["cls"]) for o in objs]
            ign = [bool(o.get("ignore", False)) for o in objs]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{path}: frame {k}: each object needs bbox [x1, y1, x2, y2], cls and track_id ({e!r})"
            ) from None
        if len(cls) and (min(cls) < 0 or max(cls) >= len(classes)):
            raise ValueError(f"{path}: frame {k}: class id out of range 0..{len(classes) - 1}")
        if len(boxes) and not ((boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])).all():
            raise ValueError(f"{path}: frame {k}: a box has x2 < x1 or y2 < y1")
        try:
            out.append(TrackFrame(ids, boxes, cls, ign))
        except ValueError as e:
            raise ValueError(f"{path}: frame {k}: {e}") from None
    return out


# MOTChallenge gt.txt classes (MOT16/17/20): 1 pedestrian; 2 person on vehicle, 7 static person, 8 distractor
# and 12 reflection are the evaluation's distractors (ignore regions); the rest are not scored.
_MOT_PEDESTRIAN = 1
_MOT_DISTRACTORS = {2, 7, 8, 12}
_PEDESTRIAN = CLASSES.index("pedestrian")


def _load_track_txt(path: str) -> dict[int, list]:
    """KITTI tracking or MOTChallenge text labels: frame (from 0) -> [(track id, xyxy box, class id or
    "ignore")]."""
    rows: dict[int, list] = {}
    try:
        f = open(path, encoding="utf-8-sig")
    except OSError as e:
        raise ValueError(f"cannot read the labels {path!r}: {e.strerror or e}") from None
    with f:
        lines = [(n, ln.strip()) for n, ln in enumerate(f, 1) if ln.strip()]
    mot = bool(lines) and "," in lines[0][1]
    for n, line in lines:
        where = f"{path}:{n}"
        if mot:
            frame, tid, box, cls = _mot_line(line, where)
        else:
            frame, tid, box, cls = _kitti_track_line(line, where)
        if cls is None:
            continue
        if not (np.isfinite(box).all() and box[2] >= box[0] and box[3] >= box[1]):
            raise ValueError(f"{where}: the box {box.tolist()} is not finite, right >= left, bottom >= top")
        if frame < 0:
            raise ValueError(f"{where}: frame {frame + int(mot)} is before the first frame ({int(mot)})")
        objs = rows.setdefault(frame, [])
        if cls != "ignore" and any(i == tid and c != "ignore" for i, _, c in objs):
            raise ValueError(f"{where}: track {tid} appears twice in frame {frame + int(mot)}")
        objs.append((tid, box, cls))
    return rows


def _numbers(fields, where, what):
    try:
        return [float(v) for v in fields]
    except ValueError:
        raise ValueError(f"{where}: {what} must be numbers, got {' '.join(fields)!r}") from None


def _mot_line(line, where):
    p = [v.strip() for v in line.split(",")]
    if len(p) not in (6, 7, 8, 9, 10):
        raise ValueError(
            f"{where}: a MOTChallenge line has 6 to 10 comma-separated fields "
            f"(frame,id,left,top,width,height,consider,class,visibility), got {len(p)}"
        )
    v = _numbers(p, where, "MOTChallenge fields")
    frame, tid = int(v[0]) - 1, int(v[1])
    box = np.array([v[2], v[3], v[2] + v[4], v[3] + v[5]])
    consider = len(p) < 7 or v[6] != 0
    if len(p) in (8, 9):  # MOT16/17/20 gt: a class per line
        c = int(v[7])
        cls = "ignore" if c in _MOT_DISTRACTORS else (_PEDESTRIAN if c == _MOT_PEDESTRIAN else None)
        if cls != "ignore" and not consider:
            cls = None
    else:  # MOT15-style (10 fields, x y z world coordinates) or bare: pedestrians
        cls = _PEDESTRIAN if consider else None
    return frame, tid, box, cls


def _kitti_track_line(line, where):
    from .classes import KITTI_MAP, class_id

    p = line.split()
    if len(p) not in (17, 18):
        raise ValueError(
            f"{where}: a KITTI tracking line has 17 fields (18 with a score): frame track_id type truncated "
            f"occluded alpha left top right bottom h w l x y z rotation_y; got {len(p)} (for MOTChallenge "
            "gt.txt the fields are separated by commas)"
        )
    head = _numbers(p[:2], where, "the frame and track id (fields 1-2)")
    v = _numbers(p[3:], where, "the fields after the type")
    c = class_id(p[2], {**KITTI_MAP, "person": KITTI_MAP["person_sitting"]})  # tracking's name for it
    return int(head[0]), int(head[1]), np.array(v[3:7]), c


def _assign(cost: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j) of valid entries: as many as possible, then the least total cost. Each invalid pair
    costs more than any set of valid ones could (py-motmetrics' construction)."""
    if not valid.any():
        return []
    c = np.abs(cost[valid]).max() + 1.0
    big = 2 * min(cost.shape) * c + 1.0
    rows, cols = linear_sum_assignment(np.where(valid, cost, big))
    return [(i, j) for i, j in zip(rows, cols) if valid[i, j]]


class MOTAccumulator:
    """Scores a video frame by frame: ``update(gt, hyp)`` per frame, then ``summary()``."""

    def __init__(self, iou_threshold: float = 0.5, class_aware: bool = True):
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.iou_threshold, self.class_aware = float(iou_threshold), bool(class_aware)
        self.frames = self.matches = self.switches = self.false_positives = self.misses = 0
        self.iou_sum = 0.0
        self._last: dict[int, int] = {}  # object id -> the hypothesis of its latest match
        self._history: dict[int, list[bool]] = {}  # object id -> matched? in each frame it is present
        self._overlaps: Counter = Counter()  # (object, hypothesis) -> frames they overlap enough
        self._obj_frames: Counter = Counter()
        self._hyp_frames: Counter = Counter()
        self._frames: list = []  # (object ids, hypothesis ids, similarity) per frame, for HOTA

    def update(self, gt: TrackFrame, hyp: TrackFrame) -> None:
        """Score one frame (``gt.ignore`` is not looked at: see :func:`drop_ignored`)."""
        self.frames += 1
        iou = box_iou(gt.boxes, hyp.boxes)
        valid = iou >= self.iou_threshold
        if self.class_aware:
            valid &= gt.classes[:, None] == hyp.classes[None, :]
        self._obj_frames.update(gt.ids.tolist())
        self._hyp_frames.update(hyp.ids.tolist())
        sim = np.where(gt.classes[:, None] == hyp.classes[None, :], iou, 0.0) if self.class_aware else iou
        self._frames.append((gt.ids.copy(), hyp.ids.copy(), sim))
        for i, j in zip(*np.nonzero(valid)):
            self._overlaps[int(gt.ids[i]), int(hyp.ids[j])] += 1
        matched_gt = np.zeros(len(gt.ids), bool)
        matched_hyp = np.zeros(len(hyp.ids), bool)
        pairs = []
        # 1. matches carried over from earlier frames
        column = {int(h): j for j, h in enumerate(hyp.ids)}
        for i, o in enumerate(gt.ids.tolist()):
            j = column.get(self._last[o]) if o in self._last else None
            # (two objects can share a last partner: the track moved from one to the other)
            if j is not None and valid[i, j] and not matched_hyp[j]:
                matched_gt[i] = matched_hyp[j] = True
                pairs.append((i, j, False))
        # 2. the rest by assignment; a new partner for an object already matched once is a switch
        rest = valid & ~matched_gt[:, None] & ~matched_hyp[None, :]
        for i, j in _assign(1.0 - iou, rest):
            o, h = int(gt.ids[i]), int(hyp.ids[j])
            pairs.append((i, j, o in self._last and self._last[o] != h))
            matched_gt[i] = matched_hyp[j] = True
        for i, j, switch in pairs:
            self._last[int(gt.ids[i])] = int(hyp.ids[j])
            self.iou_sum += float(iou[i, j])
            if switch:
                self.switches += 1
            else:
                self.matches += 1
        self.misses += int((~matched_gt).sum())
        self.false_positives += int((~matched_hyp).sum())
        for o, m in zip(gt.ids.tolist(), matched_gt.tolist()):
            self._history.setdefault(o, []).append(m)

    def summary(self) -> dict:
        """The scores (see the module's docstring); ratios with a zero denominator are None."""
        objects = sum(self._obj_frames.values())
        hyps = sum(self._hyp_frames.values())
        found = self.matches + self.switches  # matched hypotheses, switches included

        def ratio(a, b):
            return float(a) / b if b else None

        idtp = 0
        if self._overlaps:
            oids = sorted({o for o, _ in self._overlaps})
            hids = sorted({h for _, h in self._overlaps})
            oi = {o: k for k, o in enumerate(oids)}
            hi = {h: k for k, h in enumerate(hids)}
            tp = np.zeros((len(oids), len(hids)))
            for (o, h), v in self._overlaps.items():
                tp[oi[o], hi[h]] = v
            r, c = linear_sum_assignment(-tp)
            idtp = int(tp[r, c].sum())
        fragmentations = 0
        coverage = []
        for seq in self._history.values():
            s = np.asarray(seq)
            coverage.append(s.mean())
            hit = np.nonzero(s)[0]
            if len(hit):
                span = s[hit[0]:hit[-1] + 1]
                fragmentations += int((span[:-1] & ~span[1:]).sum())
        coverage = np.asarray(coverage)
        mota = None if not objects else 1.0 - (self.misses + self.false_positives + self.switches) / objects
        hota = _hota_scores(self._frames, objects, hyps)
        return dict(
            **hota,
            mota=mota,
            motp_iou=ratio(self.iou_sum, found),
            idf1=ratio(2 * idtp, objects + hyps),
            idp=ratio(idtp, hyps),
            idr=ratio(idtp, objects),
            precision=ratio(found, hyps),
            recall=ratio(found, objects),
            objects=objects,
            hypotheses=hyps,
            matches=found,
            misses=self.misses,
            false_positives=self.false_positives,
            id_switches=self.switches,
            fragmentations=fragmentations,
            gt_tracks=len(self._history),
            mostly_tracked=int((coverage >= 0.8).sum()),
            partially_tracked=int(((coverage >= 0.2) & (coverage < 0.8)).sum()),
            mostly_lost=int((coverage < 0.2).sum()),
            tracks=len(self._hyp_frames),
        )


_ALPHAS = np.arange(1, 20) * 0.05  # HOTA's localisation thresholds


def _hota_scores(frames, objects: int, hyps: int) -> dict:
    """HOTA, DetA, AssA, LocA (means over the alphas) of frames [(object ids, hypothesis ids, similarity)]."""
    if not objects or not hyps:
        return dict(hota=0.0 if objects or hyps else None, deta=0.0 if objects or hyps else None,
                    assa=0.0 if objects or hyps else None, loca=None)
    oix = {o: k for k, o in enumerate(sorted({int(o) for f in frames for o in f[0]}))}
    hix = {h: k for k, h in enumerate(sorted({int(h) for f in frames for h in f[1]}))}
    frames = [(np.array([oix[int(o)] for o in g], int), np.array([hix[int(h)] for h in t], int), s)
              for g, t, s in frames]
    # global alignment: how much each object-track pair overlaps over the video, each frame's similarity
    # shared out Jaccard-wise among the pairs competing for the same boxes
    potential = np.zeros((len(oix), len(hix)))
    obj_count = np.zeros((len(oix), 1))
    hyp_count = np.zeros((1, len(hix)))
    for g, t, s in frames:
        denom = s.sum(0)[None, :] + s.sum(1)[:, None] - s
        share = np.divide(s, denom, out=np.zeros_like(s), where=denom > np.finfo(float).eps)
        potential[g[:, None], t[None, :]] += share
        obj_count[g] += 1
        hyp_count[0, t] += 1
    alignment = potential / (obj_count + hyp_count - potential)
    eps = np.finfo(float).eps
    tp, fn, fp, loc = (np.zeros(len(_ALPHAS)) for _ in range(4))
    matches = np.zeros((len(_ALPHAS), len(oix), len(hix)))
    for g, t, s in frames:
        if not len(g) or not len(t):
            fn += len(g)
            fp += len(t)
            continue
        rows, cols = linear_sum_assignment(-(alignment[g[:, None], t[None, :]] * s))
        for a, alpha in enumerate(_ALPHAS):
            ok = s[rows, cols] >= alpha - eps
            r, c = rows[ok], cols[ok]
            tp[a] += len(r)
            fn[a] += len(g) - len(r)
            fp[a] += len(t) - len(r)
            loc[a] += s[r, c].sum()
            matches[a, g[r], t[c]] += 1
    # each match weighted by the Jaccard index of its object's and its track's detections
    jaccard = [np.sum(m * m / np.maximum(1, obj_count + hyp_count - m)) for m in matches]
    assa = np.array(jaccard) / np.maximum(1, tp)
    deta = tp / np.maximum(1, tp + fn + fp)
    loca = np.maximum(1e-10, loc) / np.maximum(1e-10, tp)
    return dict(hota=float(np.sqrt(deta * assa).mean()), deta=float(deta.mean()), assa=float(assa.mean()),
                loca=float(loca.mean()))


def drop_ignored(gt: TrackFrame, hyp: TrackFrame, iou_threshold: float) -> tuple[TrackFrame, TrackFrame]:
    """The frame without its ignored objects and without the hypotheses assigned to them (all objects and
    hypotheses paired at IoU >= the threshold, regardless of class, as MOTChallenge does)."""
    if not gt.ignore.any():
        return gt, hyp
    keep_hyp = np.ones(len(hyp.ids), bool)
    if len(hyp.ids):
        iou = box_iou(gt.boxes, hyp.boxes)
        for i, j in _assign(1.0 - iou, iou >= iou_threshold):
            if gt.ignore[i]:
                keep_hyp[j] = False
    return gt.subset(~gt.ignore), hyp.subset(keep_hyp)


def evaluate_tracking(gt_frames, hyp_frames, iou_threshold: float = 0.5, class_aware: bool = True,
                      classes=CLASSES, scored=None) -> dict:
    """Scores of the hypothesis frames against the ground-truth frames (lists of :class:`TrackFrame`,
    frame k against frame k; as many of each). ``scored``: the class ids to score (default all); objects
    and tracks of the others are left out, as for labels that cover only some classes (MOTChallenge:
    pedestrians). Returns ``{"frames", "iou_threshold", "class_aware", "scored", "overall": {...},
    "per_class": {name: {...}}}`` with the keys of :data:`METRICS`; per_class lists the scored classes
    that have ground truth or hypotheses."""
    gt_frames, hyp_frames = list(gt_frames), list(hyp_frames)
    if len(gt_frames) != len(hyp_frames):
        raise ValueError(
            f"evaluate_tracking: {len(gt_frames)} ground-truth frames but {len(hyp_frames)} frames of tracks"
        )
    scored = sorted(range(len(classes)) if scored is None else {int(c) for c in scored})
    if not scored or scored[0] < 0 or scored[-1] >= len(classes):
        raise ValueError(f"evaluate_tracking: scored classes are ids 0..{len(classes) - 1}, got {scored}")
    overall = MOTAccumulator(iou_threshold, class_aware)
    per_class = {c: MOTAccumulator(iou_threshold, True) for c in scored}
    for gt, hyp in zip(gt_frames, hyp_frames):
        if len(scored) < len(classes):
            gt = gt.subset(gt.ignore | np.isin(gt.classes, scored))
            hyp = hyp.subset(np.isin(hyp.classes, scored))
        gt, hyp = drop_ignored(gt, hyp, iou_threshold)
        overall.update(gt, hyp)
        for c, acc in per_class.items():
            acc.update(gt.subset(gt.classes == c), hyp.subset(hyp.classes == c))
    scores = {classes[c]: acc.summary() for c, acc in per_class.items()}
    return dict(
        frames=len(gt_frames),
        iou_threshold=float(iou_threshold),
        class_aware=bool(class_aware),
        scored=[classes[c] for c in scored],
        overall=overall.summary(),
        per_class={name: s for name, s in scores.items() if s["objects"] or s["hypotheses"]},
    )


def format_tracking_report(m: dict) -> str:
    """A short human-readable table of :func:`evaluate_tracking`'s result."""

    def f(v, pct=True):
        return "  n/a" if v is None else (f"{100 * v:5.1f}" if pct else f"{v:5d}")

    cols = ("HOTA", "MOTA", "IDF1", "MOTP", "Rcll", "Prcn", "IDsw", "Frag")
    head = f"{'':16}" + "".join(f"{c:>6}" for c in cols)
    head += "".join(f"{c:>5}" for c in ("MT", "ML", "GT"))
    lines = [
        f"tracking over {m['frames']} frames, IoU >= {m['iou_threshold']:g}"
        f"{', classes must agree' if m['class_aware'] else ', any class'}",
        head,
    ]
    for name, s in [("all", m["overall"])] + list(m["per_class"].items()):
        lines.append(
            f"{name:16}{f(s['hota']):>6}{f(s['mota']):>6}{f(s['idf1']):>6}{f(s['motp_iou']):>6}{f(s['recall']):>6}"
            f"{f(s['precision']):>6}{s['id_switches']:6d}{s['fragmentations']:6d}{s['mostly_tracked']:5d}"
            f"{s['mostly_lost']:5d}{s['gt_tracks']:5d}"
        )
    return "\n".join(lines)
