"""Framework lab: train a small classifier live with our framework, and the benchmark figures (ours
against PyTorch / cuDNN) read from ``benchmarks/results/*.json``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from apps.dashboard import common, results

try:  # the framework is a separate layer: if it is broken, the benchmark figures still show
    from apps.dashboard import lab
except Exception as exc:
    lab, LAB_ERROR = None, f"{type(exc).__name__}: {exc}"

ROOT = Path(__file__).resolve().parents[2]
# overridable so tests can point the page at files they make
RESULTS = Path(os.environ.get("DLSUITE_BENCHMARK_RESULTS", ROOT / "benchmarks" / "results"))



def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


CNN_TASK = "shapes 16×16 (CNN)"

st.title("Framework lab")
common.device_badge()
train_tab, bench_tab = st.tabs(["Train live", "Benchmarks"])

# ------------------------------------------------------------------------------------------- training
def _train_ui() -> None:
    st.markdown("A multilayer perceptron learns a 2-D two-class problem, step by step, on the framework's "
                "autograd. The curves and the decision map update while it trains.")
    with st.form("train_form"):
        c1, c2, c3 = st.columns(3)
        choices = list(lab.DATASETS) + ([CNN_TASK] if lab._has_conv() else [])
        dataset = c1.selectbox("Data set", choices, key="lab_dataset",
                               help="2-D problems train an MLP; the image task trains a small CNN "
                                    "(offered once framework.nn has Conv2d).")
        noise = c1.slider("Noise", 0.0, 0.3, 0.08, 0.01, key="lab_noise")
        hidden = c2.select_slider("Hidden units", [4, 8, 16, 32, 64, 128], value=32, key="lab_hidden")
        depth = c2.slider("Hidden layers", 1, 4, 2, key="lab_depth")
        lr = c3.select_slider("Learning rate (Adam)", [0.001, 0.003, 0.01, 0.02, 0.05, 0.1], value=0.02,
                              key="lab_lr")
        steps = c3.slider("Steps", 20, 2000, 400, 20, key="lab_steps")
        run = st.form_submit_button("Train", type="primary")

    if run:
        cfg = lab.TrainConfig(dataset=dataset, noise=noise, hidden=hidden, depth=depth, lr=lr, steps=steps)
        progress = st.progress(0.0, text="Starting…")
        cols = st.columns([3, 2])
        loss_chart = cols[0].empty()
        acc_chart = cols[0].empty()
        picture = cols[1].empty()
        history: list[dict] = []
        cnn = dataset == CNN_TASK
        if cnn:
            x, y = lab.make_shapes(64, noise=cfg.noise, seed=cfg.seed + 1)
        else:
            x, y = lab.make_dataset(cfg.dataset, cfg.n, cfg.noise, cfg.seed)
        t0 = time.perf_counter()
        next_chart = next_picture = 0.0
        train_s = 0.0  # time in the framework, apart from drawing
        try:
            trainer = lab.train_cnn if cnn else lab.train
            it = trainer(cfg, every=max(1, steps // 100))
            while True:
                t_step = time.perf_counter()
                m = next(it, None)
                train_s += time.perf_counter() - t_step
                if m is None:
                    break
                history.append({k: m[k] for k in ("step", "loss", "train_acc", "val_acc")})
                history_api = m["api"]
                now = time.perf_counter()
                last = m["step"] == steps
                # Throttled redraws, spaced by twice their own cost, so drawing (Altair specs, PNGs)
                # never takes more than about a third of the time whatever the machine's load.
                if now >= next_chart or last:
                    df = pd.DataFrame(history).set_index("step")  # ≤ ~100 rows: cheap to resend
                    loss_chart.line_chart(df[["loss"]], height=220, y_label="cross-entropy")
                    acc_chart.line_chart(df[["train_acc", "val_acc"]], height=220, y_label="accuracy")
                    progress.progress(m["step"] / steps, text=f"step {m['step']}/{steps} — loss "
                                      f"{m['loss']:.4f}, validation accuracy {m['val_acc']:.1%}")
                    done = time.perf_counter()
                    next_chart = done + max(0.2, 2 * (done - now))
                now = time.perf_counter()
                if now >= next_picture or last:
                    if cnn:
                        picture.image(lab.shapes_gallery(m["predict"], x, y),
                                      caption="held-out images: green frame = right, red = wrong",
                                      width="stretch")
                    else:
                        picture.image(lab.decision_image(m["predict"], x, y, size=160),
                                      caption="P(class 1) and the data", width="stretch")
                    done = time.perf_counter()
                    next_picture = done + max(0.5, 2 * (done - now))
            elapsed = time.perf_counter() - t0
            final = history[-1]
            st.session_state["lab_result"] = {**final, "seconds": elapsed, "train_seconds": train_s,
                                              "api": history_api, "dataset": dataset}
        except Exception as exc:
            common.show_error("Training failed", exc)

    res = st.session_state.get("lab_result")
    if res:
        st.success(f"Trained on **{res['dataset']}** in {res['seconds']:.1f} s ({res['train_seconds']:.1f} s "
                   f"of it in the framework, the rest drawing) with {res['api']}: "
                   f"final loss {res['loss']:.4f}, train accuracy {res['train_acc']:.1%}, "
                   f"validation accuracy {res['val_acc']:.1%}.")


with train_tab:
    if lab is None:
        st.info(f"Live training is not available: the framework does not import ({LAB_ERROR}).",
                icon=common.WIP)
    else:
        _train_ui()

# ----------------------------------------------------------------------------------------- benchmarks
def _ratio_chart(figures: dict[str, float]):
    """Bars from parity (1) to each ratio on a log axis: equal distances mean equal factors. One colour:
    whether above 1 is good depends on the ratio's direction, which the file's unit states."""
    import altair as alt

    df = pd.DataFrame({"figure": list(figures), "ratio": list(figures.values())})
    df = df[df["ratio"] > 0]
    df["parity"] = 1.0
    bars = alt.Chart(df).mark_bar().encode(
        y=alt.Y("figure:N", sort=None, title=None, axis=alt.Axis(labelLimit=420)),
        x=alt.X("ratio:Q", title="ratio (log scale)", scale=alt.Scale(type="log")),
        x2="parity:Q",
        tooltip=["figure", alt.Tooltip("ratio:Q", format=".3f")])
    parity = alt.Chart(pd.DataFrame({"x": [1.0]})).mark_rule(color="gray", strokeDash=[4, 3]).encode(x="x:Q")
    return bars + parity


def _show_benchmark(data) -> None:
    """One result file: what was measured against what, the ratios as a chart, every table of rows,
    the targets met, the raw JSON."""
    if not isinstance(data, (dict, list)):
        st.write(data)
        return
    if isinstance(data, dict):
        about = {k: data[k] for k in ("benchmark", "unit", "speedup", "device", "command", "generated",
                                      "error", "reference_note") if isinstance(data.get(k), str)}
        if about:
            st.caption(" · ".join(f"**{k}**: {v}" for k, v in about.items()))
    key = results.key_figures(data)
    if key:
        for col, (k, v) in zip(st.columns(min(len(key), 4)) * 2, key.items()):
            col.metric(k, f"{v:.3g}")
    figures = results.ratios(data)
    if figures:
        st.caption("Ratios against the reference measured in the same run (the unit above says which way "
                   "is better; the grey line marks parity)")
        st.altair_chart(_ratio_chart(figures), width="stretch", height=max(140, 30 * len(figures) + 50))
    for path, rows in results.tables(data):
        df = pd.DataFrame(rows)
        if df.shape[1] > 14:  # a whole nested run flattened: the raw JSON below reads better
            continue
        st.caption(f"`{path}`")
        st.dataframe(df, hide_index=True, width="stretch")
    flags = results.flatten_flags(data.get("meets", {}) if isinstance(data, dict) else {})
    if flags:
        met = ["yes" if v else "NO" for v in flags.values()]
        st.dataframe(pd.DataFrame({"target": list(flags), "met": met}), hide_index=True)
    if not figures and not results.tables(data):
        flat = results.flatten_numbers(data)
        if flat:
            st.dataframe(pd.Series(flat, name="value"), width="stretch")
        else:
            st.write("No numeric figures in this file.")
    with st.expander("Raw JSON"):
        st.json(data)


# ----------------------------------------------------------------------------------------- benchmarks
with bench_tab:
    st.markdown(f"Figures written by the scripts in `benchmarks/` to `{_rel(RESULTS)}/`. Each "
                "script times our code and a reference (PyTorch, cuDNN or pydicom) in the same run.")
    files = results.load_benchmarks(RESULTS)
    if not files:
        st.info(f"No benchmark results yet: `{_rel(RESULTS)}/*.json` is absent. Run the scripts "
                "in `benchmarks/` (e.g. `python -m benchmarks.<name>`) to produce them.", icon=common.EMPTY)
    for name, data, error in files:
        st.subheader(name)
        if error:
            st.warning(f"{name}: {error}")
            continue
        _show_benchmark(data)
