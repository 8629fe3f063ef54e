"""Training the detector on cached frames (see :mod:`apps.perception.data`).

AdamW, linear warm-up then cosine decay (per step), an exponential moving average of the weights
(the EMA weights are the ones evaluated and exported), background threads that prepare the next
batches (augmentation and target encoding overlap the NumPy compute, which releases the GIL).

Outputs in ``--out``: ``last.safetensors`` (model + EMA + optimizer state, for ``--resume``),
``state.json`` (step, best metrics), ``best.safetensors`` (EMA weights of the best validation mAP50-95;
without a validation set, the final EMA weights), ``model_card.json`` (strict JSON: a metric that is
undefined, such as the AP of a class absent from the validation set, is ``null``; without a validation
set ``metrics`` is ``null``), ``log.jsonl`` (one line per logged step / evaluation).
"""

from __future__ import annotations

import json
import math
import os
import platform
import queue
import sys
import threading
import time

import numpy as np

import framework as fw

from .classes import CLASSES
from .data import STRIDE, CachedDataset, TrainDataset, collate
from .detector import _to_numpy
from .losses import focal_heatmap_loss, giou_loss, reg_l1_loss
from .model import CenterNet, count_parameters, widen_state_dict


def cosine_lr(
    step: int, total: int, base: float, warmup: int, final_frac: float = 0.02, frac: float | None = None
) -> float:
    """Linear warm-up over ``warmup`` steps times a cosine from ``base`` to ``final_frac * base``;
    the cosine follows ``frac`` (0..1, e.g. elapsed / time budget) when given, else ``step / total``."""
    t = min(1.0, step / max(1, total) if frac is None else frac)
    warm = min(1.0, (step + 1) / max(1, warmup))
    return base * warm * (final_frac + (1 - final_frac) * 0.5 * (1 + math.cos(math.pi * t)))


class EMA:
    """Exponential moving average of a model's state (parameters and BatchNorm buffers), as NumPy."""

    def __init__(self, model, decay: float = 0.995):
        self.decay = decay
        self.state = {k: np.array(_to_numpy(v), copy=True) for k, v in model.state_dict().items()}
        self.updates = 0

    def update(self, model) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 100.0))  # short warm-up of the decay (YOLOv5's ramp)
        for k, v in model.state_dict().items():
            a = _to_numpy(v)
            if a.dtype.kind == "f":
                self.state[k] *= d
                self.state[k] += (1 - d) * a
            else:
                self.state[k] = np.array(a, copy=True)


def _json_safe(x):
    """``x`` with every non-finite float replaced by None: ``json.dump`` would write NaN / Infinity, which
    are not JSON (RFC 8259) and which strict readers (browsers, jq, most languages) reject."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _load_checked(model, sd: dict, what: str, width: float) -> None:
    """``model.load_state_dict(sd)`` with an error that says which file and which option do not fit."""
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        first = str(e).split("\n\t")[1].strip() if "\n\t" in str(e) else str(e)
        raise ValueError(
            f"{what} does not fit a detector of width {width} with {model.num_classes} classes "
            f"(another --width, or another class list): {first}"
        ) from None


def _init_weights(path: str) -> dict:
    """Model weights to start from: a plain state dict (``best.safetensors``, the committed detector)
    or a training checkpoint (``last.safetensors``: its EMA weights)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"--init: no weights file at {path}")
    blob = fw.load(path)
    return blob["ema"] if isinstance(blob.get("ema"), dict) else blob


def _batches(
    ds: TrainDataset, batch: int, seed: int, start_step: int, steps: int, threads: int = 2, depth: int = 4
):
    """Yield (step, images, targets) for steps start_step..steps-1; epochs reshuffle deterministically.

    ``threads`` workers prepare steps round-robin and a re-order buffer yields them in order; every
    sample's randomness is a function of (seed, epoch, index), so the batches do not depend on the
    number of workers. An error in a worker is raised here, in the training loop."""
    n = len(ds)
    per_epoch = n // batch
    if per_epoch < 1:
        raise ValueError(f"train: the data set has {n} frames, fewer than one batch of {batch}")
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def make(step):
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng((seed, epoch)).permutation(n)
        idx = perm[k * batch : (k + 1) * batch]
        return collate([ds.sample(int(i), epoch) for i in idx])

    def worker(w):
        for s in range(start_step + w, steps, threads):
            if stop.is_set():
                return
            try:
                item = (s, *make(s))
            except BaseException as e:  # handed to the training loop, which raises it
                item = (s, e, None)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if item[2] is None:
                return

    ts = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(threads)]
    for t in ts:
        t.start()
    pending = {}
    try:
        for s in range(start_step, steps):
            while s not in pending:
                item = q.get()
                pending[item[0]] = item
            item = pending.pop(s)
            if item[2] is None:
                raise RuntimeError(f"train: preparing the batch of step {s} failed: {item[1]!r}") from item[1]
            yield item
    finally:
        stop.set()


def train(
    data: str,
    out: str,
    val: str | None = None,
    steps: int = 3000,
    batch: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 5e-4,
    size: int = 320,
    width: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    eval_every: int = 500,
    val_images: int = 300,
    mosaic: float = 0.3,
    log_every: int = 20,
    time_budget_min: float | None = None,
    crop: int | None = 224,
    progress: bool = True,
    init: str | None = None,
    giou: float = 0.0,
    workers: int = 2,
) -> dict:
    """Train; returns the final state dict (step, best metrics). See the module docstring for outputs."""
    from .evaluate import evaluate_cache

    if not (math.isfinite(giou) and giou >= 0):
        raise ValueError(f"train: --giou must be a finite weight >= 0 (0 = off), got {giou}")
    if not (math.isfinite(width) and width > 0):
        raise ValueError(f"train: --width must be > 0, got {width}")
    if workers < 1:
        raise ValueError(f"train: --workers must be >= 1 (threads preparing batches), got {workers}")
    if steps < 1 or batch < 1 or eval_every < 1:
        raise ValueError(
            f"train: --steps, --batch and --eval-every must be >= 1, got {steps}, {batch}, {eval_every}"
        )
    if time_budget_min is not None and not (math.isfinite(time_budget_min) and time_budget_min > 0):
        raise ValueError(f"train: --time-budget must be a number of minutes > 0, got {time_budget_min}")
    # the network halves the resolution five times and adds the FPN levels back together
    if size < 32 or size % 32:
        raise ValueError(f"train: --size must be a multiple of 32 (the network's total stride), got {size}")
    if crop is not None and crop > 0 and crop < size and crop % 32:
        raise ValueError(f"train: --crop must be a multiple of 32 (or 0 = whole frames), got {crop}")

    ckpt = os.path.join(out, "last.safetensors")
    if not resume and os.path.exists(ckpt):
        # a fresh run would overwrite this checkpoint at its step 100: a forgotten --resume must not
        # cost the run that is there
        raise ValueError(
            f"train: {out} already holds a run ({ckpt}): add --resume to continue it, or choose another "
            "--out (or delete that folder) to start over"
        )
    os.makedirs(out, exist_ok=True)
    fw.manual_seed(seed)
    cache = CachedDataset(data)
    ds = TrainDataset(cache, size, seed=seed, mosaic_p=mosaic, crop=crop)
    model = CenterNet(len(CLASSES), width=width)
    if device != "cpu":
        model = model.to(device)
    decay, no_decay = [], []
    for _name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = fw.optim.AdamW(
        [dict(params=decay, weight_decay=weight_decay), dict(params=no_decay, weight_decay=0.0)], lr=lr
    )
    if init is not None and not (resume and os.path.exists(os.path.join(out, "last.safetensors"))):
        sd = _init_weights(init)  # fine-tuning: fresh optimizer and schedule
        target = model.state_dict()
        if any(k in target and tuple(v.shape) != tuple(target[k].shape) for k, v in sd.items()):
            # narrower weights into a wider model: widened without changing what they compute
            sd = widen_state_dict(sd, model, seed=seed)
            print(f"--init: widened {init} to width {width} (function-preserving)", file=sys.stderr)
        _load_checked(model, sd, f"--init {init}", width)
    ema = EMA(model)
    # what a run's trajectory depends on: a resume with other values would not continue it (--steps
    # may change: it stretches the schedule, which is how a finished run is extended)
    config = dict(data=os.path.abspath(data), size=size, width=width, batch=batch, lr=lr,
                  weight_decay=weight_decay, seed=seed, mosaic=mosaic, crop=crop, giou=giou)
    state = dict(step=0, best_map50_95=-1.0, best=None, seconds=0.0, config=config)
    if resume and os.path.exists(ckpt):
        blob = fw.load(ckpt)
        if not all(isinstance(blob.get(k), dict) for k in ("model", "optim", "ema")):
            raise ValueError(f"--resume: {ckpt} is not a training checkpoint (model, optim and ema)")
        _load_checked(model, blob["model"], f"--resume: the checkpoint {ckpt}", width)
        opt.load_state_dict(blob["optim"])
        ema.state = {k: _to_numpy(v).copy() for k, v in blob["ema"].items()}
        try:
            with open(os.path.join(out, "state.json")) as f:
                state = json.load(f)
            int(state["step"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"--resume: {os.path.join(out, 'state.json')} (the step the checkpoint was saved at) is "
                f"missing or damaged ({type(e).__name__}); the run cannot continue where it stopped"
            ) from None
        saved = state.get("config")  # (absent in runs from before it was recorded)
        if isinstance(saved, dict):
            diff = [f"--{k.replace('_', '-')} {saved[k]!r} (now {v!r})" for k, v in config.items()
                    if k in saved and saved[k] != v]
            if diff:
                raise ValueError(
                    f"--resume: the run in {out} was started with " + ", ".join(diff)
                    + "; resume it with the same options, or start a new run with --init"
                )
        state["config"] = config
        ema.updates = state["step"]
        print(f"resumed from step {state['step']}", file=sys.stderr)
        if state["step"] >= steps:
            print(
                f"--resume: the run already reached step {state['step']} (--steps {steps}): nothing to train",
                file=sys.stderr,
            )
            return state
    elif resume:
        print(f"--resume: no checkpoint in {out}, starting a new run", file=sys.stderr)
    warmup = min(200, max(1, steps // 10))
    log = open(os.path.join(out, "log.jsonl"), "a")
    pbar = None
    if progress:
        from tqdm import tqdm

        pbar = tqdm(total=steps, initial=state["step"], desc="train", dynamic_ncols=True, file=sys.stderr)
    t_start = time.time() - state.get("seconds", 0.0)
    run_loss = None

    def save_ckpt(step):
        fw.save(
            dict(
                model=model.state_dict(),
                optim=opt.state_dict(),
                ema={k: fw.from_numpy(v) for k, v in ema.state.items()},
            ),
            ckpt + ".tmp",
        )
        os.replace(ckpt + ".tmp", ckpt)
        state.update(step=step, seconds=time.time() - t_start)
        with open(os.path.join(out, "state.json"), "w") as f:
            json.dump(state, f, indent=1)

    def evaluate_now(step):
        ev_model = CenterNet(len(CLASSES), width=width)
        ev_model.load_state_dict({k: fw.from_numpy(v) for k, v in ema.state.items()})
        m = evaluate_cache(ev_model, val, size=size, limit=val_images, device=device)
        rec = dict(
            step=step,
            eval=True,
            mAP50=m["mAP50"],
            mAP50_95=m["mAP50_95"],
            minutes=(time.time() - t_start) / 60,
        )
        log.write(json.dumps(_json_safe(rec)) + "\n")
        log.flush()
        print(f"step {step}: val mAP50 {m['mAP50']:.4f} mAP50-95 {m['mAP50_95']:.4f}", file=sys.stderr)
        if m["mAP50_95"] > state["best_map50_95"]:
            state["best_map50_95"] = m["mAP50_95"]
            state["best"] = dict(step=step, mAP50=m["mAP50"], mAP50_95=m["mAP50_95"])
            fw.save(
                {k: fw.from_numpy(v) for k, v in ema.state.items()}, os.path.join(out, "best.safetensors")
            )
            write_card(os.path.join(out, "model_card.json"), model, width, size, m, run_info(step))
        return m

    def run_info(step):
        return dict(
            data=data,
            val=val,
            steps=step,
            schedule_steps=steps,
            batch=batch,
            lr=lr,
            weight_decay=weight_decay,
            seed=seed,
            mosaic=mosaic,
            crop=crop,
            time_budget_min=time_budget_min,
            init=init,
            giou=giou,
            minutes=round((time.time() - t_start) / 60, 1),
        )

    model.train()
    done = state["step"]  # steps completed: the step a resumed run starts at
    try:
        for step, imgs, tg in _batches(ds, batch, seed, state["step"], steps, threads=workers):
            if time_budget_min is not None:
                # the schedule follows the wall clock: a budget, not a step count, fixes the length
                frac = (time.time() - t_start) / 60 / time_budget_min
                if frac >= 1:
                    print(f"time budget of {time_budget_min} min reached at step {step}", file=sys.stderr)
                    break
                cur_lr = cosine_lr(step, steps, lr, warmup, frac=max(frac, step / steps))
            else:
                cur_lr = cosine_lr(step, steps, lr, warmup)
            for g in opt.param_groups:
                g["lr"] = cur_lr
            x = fw.from_numpy(imgs)
            if device != "cpu":
                x = x.to(device)
            heat, reg = model(x)
            l_hm = focal_heatmap_loss(heat, tg["heatmap"], tg["hm_weight"])
            l_reg = reg_l1_loss(reg, tg["reg"], tg["reg_weight"])
            loss = l_hm + l_reg
            l_box = giou_loss(reg, tg["reg"], tg["reg_weight"]) if giou else None
            if l_box is not None:
                loss = loss + giou * l_box
            opt.zero_grad()
            loss.backward()
            opt.step()
            ema.update(model)
            lv = float(loss.item())
            if not math.isfinite(lv):
                raise FloatingPointError(f"loss became {lv} at step {step}")
            run_loss = lv if run_loss is None else 0.95 * run_loss + 0.05 * lv
            if pbar is not None:
                pbar.update(1)
                pbar.set_postfix(
                    loss=f"{run_loss:.3f}",
                    hm=f"{float(l_hm.item()):.3f}",
                    reg=f"{float(l_reg.item()):.3f}",
                    lr=f"{cur_lr:.2e}",
                )
            if step % log_every == 0:
                log.write(
                    json.dumps(
                        dict(
                            step=step,
                            loss=lv,
                            hm=float(l_hm.item()),
                            reg=float(l_reg.item()),
                            **({} if l_box is None else dict(giou=float(l_box.item()))),
                            lr=cur_lr,
                            minutes=(time.time() - t_start) / 60,
                        )
                    )
                    + "\n"
                )
                log.flush()
            done = step + 1
            if done % 100 == 0:
                save_ckpt(done)
            if val and done % eval_every == 0:
                evaluate_now(done)
                model.train()
    finally:
        save_ckpt(done)
        if pbar is not None:
            pbar.close()
    if val and (not state.get("best") or state["best"]["step"] != done):
        evaluate_now(done)
    elif not val:
        # no validation set: the final EMA weights are the run's weights, with a card that loads them
        fw.save({k: fw.from_numpy(v) for k, v in ema.state.items()}, os.path.join(out, "best.safetensors"))
        write_card(os.path.join(out, "model_card.json"), model, width, size, None, run_info(done))
    save_ckpt(done)
    log.close()
    return state


def _train_command(size: int, training: dict) -> str:
    """The ``train`` command line that reproduces this run (its data, schedule and starting weights)."""
    parts = ["python -m apps.perception train", f"--data {training.get('data')}"]
    if training.get("val"):
        parts.append(f"--val {training['val']}")
    parts.append(f"--size {size}")
    parts.append(f"--crop {training.get('crop') or 0}")  # None: whole frames
    for key, flag in (("schedule_steps", "--steps"), ("batch", "--batch"), ("lr", "--lr"),
                      ("mosaic", "--mosaic"), ("seed", "--seed"), ("init", "--init"), ("giou", "--giou"),
                      ("time_budget_min", "--time-budget")):
        if training.get(key) is not None:
            parts.append(f"{flag} {training[key]}")
    return " ".join(parts)


def write_card(path: str, model, width: float, size: int, metrics: dict | None, training: dict) -> None:
    """The model card (JSON; undefined metrics are null). ``metrics`` None: trained without validation."""
    card = dict(
        name="perception-centernet",
        classes=list(CLASSES),
        input_size=size,
        stride=STRIDE,
        architecture=dict(
            type="CenterNet (heatmap + offset + log-size heads), FPN neck to stride 4",
            width=width,
            parameters=count_parameters(model),
        ),
        preprocessing="RGB, letterbox to input_size x input_size (pad value 114, centred), scale to 0..1",
        postprocessing="sigmoid heatmap, 3x3 max-pool peaks, top-100, class-aware NMS IoU 0.7",
        default_conf=0.3,
        why_centernet=(
            "One stride-4 output and max-pool peak decoding: no anchors, no per-level assignment, "
            "and post-processing under a millisecond on a CPU; FCOS would need multi-level heads "
            "and NMS over thousands of candidates."
        ),
        metrics=None if metrics is None else {
            k: metrics[k]
            for k in (
                "mAP50",
                "mAP50_95",
                "mAP75",
                "AP_small",
                "AP_medium",
                "AP_large",
                "precision",
                "recall",
                "n_images",
                "n_gt",
            )
        },
        per_class=None if metrics is None else metrics["per_class"],
        training=training,
        environment=dict(python=platform.python_version(), machine=platform.machine()),
        retrain_command=_train_command(size, training),
    )
    with open(path, "w") as f:
        json.dump(_json_safe(card), f, indent=1, allow_nan=False)
