"""The perception command line and training loop as a user meets them: wrong arguments are one-line
errors (never a traceback), ``--resume`` continues a run exactly and never invents steps, checkpoints of
another network are named as such, and the files a run writes are strict JSON that load back."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import framework as fw
from apps.perception.__main__ import main

KW = dict(batch=3, size=64, width=0.25, crop=None, progress=False, workers=1, mosaic=0.0)


def _strict_json(path):
    """json.load that rejects NaN / Infinity (not JSON: RFC 8259), as browsers and jq do."""
    with open(path) as f:
        return json.load(f, parse_constant=lambda c: pytest.fail(f"{path} holds {c}, which is not JSON"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from apps.perception.data import build_cache

    d = str(tmp_path_factory.mktemp("cache") / "c")
    build_cache(d, 6, seed=3, size=64, width=160, height=120)
    return d


def _weights(path):
    blob = fw.load(os.path.join(path, "last.safetensors"))
    return {f"{p}.{k}": v.numpy().copy() for p in ("model", "ema") for k, v in blob[p].items()}


def test_resume_continues_identically_and_never_invents_steps(cache, tmp_path, monkeypatch):
    import apps.perception.train as T

    straight = T.train(cache, str(tmp_path / "a"), steps=4, **KW)
    # the same run interrupted before step 2 (Ctrl-C), then resumed with the same command
    cosine = T.cosine_lr

    def interrupt(step, *a, **k):
        if step == 2:
            raise KeyboardInterrupt
        return cosine(step, *a, **k)

    monkeypatch.setattr(T, "cosine_lr", interrupt)
    with pytest.raises(KeyboardInterrupt):
        T.train(cache, str(tmp_path / "b"), steps=4, **KW)
    monkeypatch.setattr(T, "cosine_lr", cosine)
    assert _strict_json(tmp_path / "b" / "state.json")["step"] == 2
    resumed = T.train(cache, str(tmp_path / "b"), steps=4, resume=True, **KW)
    assert straight["step"] == resumed["step"] == 4
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    for k in a:  # model, BatchNorm statistics and EMA: the same arithmetic in the same order
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    # resuming a finished run (or with fewer --steps) trains nothing and leaves the step where it was;
    # it used to add one step per call without training it
    for steps in (4, 2):
        assert T.train(cache, str(tmp_path / "b"), steps=steps, resume=True, **KW)["step"] == 4
        assert _strict_json(tmp_path / "b" / "state.json")["step"] == 4
    for k, v in _weights(tmp_path / "b").items():
        np.testing.assert_array_equal(v, b[k], err_msg=k)
    # the same command without --resume would overwrite the run's checkpoint: refused, nothing touched
    with pytest.raises(ValueError, match="--resume"):
        T.train(cache, str(tmp_path / "b"), steps=8, **KW)
    for k, v in _weights(tmp_path / "b").items():
        np.testing.assert_array_equal(v, b[k], err_msg=k)


def test_a_time_budget_records_only_the_steps_it_trained(cache, tmp_path, monkeypatch):
    import apps.perception.train as T

    clock = iter(range(0, 10_000, 20))  # every call 20 s later: the 1-minute budget ends after a few steps
    monkeypatch.setattr(T.time, "time", lambda: float(next(clock)))
    s = T.train(cache, str(tmp_path / "r"), steps=50, time_budget_min=1.0, log_every=1, **KW)
    trained = [json.loads(x)["step"] for x in open(tmp_path / "r" / "log.jsonl")]
    assert 0 < s["step"] < 50
    assert s["step"] == trained[-1] + 1  # the step that hit the budget was not trained: not counted


def test_bad_numbers_are_errors_not_a_zero_division_or_an_empty_run(cache, tmp_path):
    from apps.perception.train import train

    for kw, msg in (
        (dict(steps=0), "--steps"),
        (dict(time_budget_min=0.0), "--time-budget"),
        (dict(size=100), "multiple of 32"),
    ):
        with pytest.raises(ValueError, match=msg):
            train(cache, str(tmp_path / "x"), **{**KW, "steps": 2, **kw})


def test_checkpoints_of_another_network_or_damaged_state_are_named(cache, tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["train", "--data", cache, "--out", out, "--batch", "3", "--crop", "0", "--workers", "1"]
    main([*args, "--steps", "1", "--width", "0.25"])
    with pytest.raises(SystemExit) as e:
        main([*args, "--steps", "2", "--width", "0.5", "--resume"])
    assert "width 0.5" in str(e.value) and "last.safetensors" in str(e.value) and "\n" not in str(e.value)
    os.remove(os.path.join(out, "state.json"))
    with pytest.raises(SystemExit, match="state.json"):
        main([*args, "--steps", "2", "--width", "0.25", "--resume"])


def test_a_run_without_validation_writes_loadable_weights_and_a_strict_card(cache, tmp_path, capsys):
    from apps.perception import load_model
    from apps.perception.train import train

    out = tmp_path / "noval"
    train(cache, str(out), steps=2, seed=5, **KW)
    card = _strict_json(out / "model_card.json")
    assert card["classes"] and card["input_size"] == 64 and card["metrics"] is None
    assert card["training"]["data"] == cache and card["training"]["seed"] == 5
    det = load_model(str(out / "best.safetensors"))  # the card gives the width it needs
    assert det.size == 64 and len(det(np.zeros((120, 160, 3), np.uint8)).boxes) >= 0
    # with a validation set in which a class is absent, its AP is undefined: null, not NaN
    out = tmp_path / "val"
    train(cache, str(out), steps=2, val=cache, eval_every=1, val_images=2, **KW)
    card = _strict_json(out / "model_card.json")
    assert any(v["AP50"] is None for v in card["per_class"].values())
    for line in open(out / "log.jsonl"):
        json.loads(line, parse_constant=lambda c: pytest.fail(f"log.jsonl holds {c}"))
    # evaluate prints strict JSON too
    capsys.readouterr()
    main(["evaluate", "--data", cache, "--weights", str(out / "best.safetensors"), "--limit", "2"])
    out_err = capsys.readouterr()
    json.loads(out_err.out, parse_constant=lambda c: pytest.fail(f"evaluate printed {c}"))
    assert "note:" not in out_err.err
    # a model deployed at another input size than the cache's frames: said, not silent
    card = _strict_json(out / "model_card.json")
    card["input_size"] = 96
    (out / "model_card.json").write_text(json.dumps(card))
    main(["evaluate", "--data", cache, "--weights", str(out / "best.safetensors"), "--limit", "1"])
    assert "64 px frames and the model's input size is 96 px" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["synth", "--out", "{tmp}/s", "--n", "0"],
        ["synth", "--out", "{tmp}/s", "--n", "-2"],
        ["synth", "--video", "{tmp}/v.mp4", "--frames", "0"],
        ["synth", "--out", "{tmp}/s", "--width", "0"],
        ["cache", "--out", "{tmp}/c", "--n", "-1"],
        ["cache", "--out", "{tmp}/c", "--size", "100"],
        ["train", "--data", "{cache}", "--time-budget", "0"],
        ["train", "--data", "{cache}", "--steps", "0"],
        ["train", "--data", "{cache}", "--crop", "100"],
        ["train", "--data", "{cache}", "--mosaic", "2"],
        ["train", "--data", "{cache}", "--lr", "nan"],
        ["evaluate", "--data", "{cache}", "--limit", "0"],
        ["demo", "--conf", "1.5"],
        ["demo", "--max-frames", "-1"],
        ["demo", "--reconnect-timeout", "0"],
    ],
)
def test_out_of_range_arguments_are_usage_errors(argv, cache, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, cache=cache) for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {argv[-2]}" in err and "Traceback" not in err
    assert not os.listdir(tmp_path)  # nothing was written


def test_user_mistakes_are_one_line_errors(cache, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint" * 8)
    cases = [
        (["synth", "--out", str(afile), "--n", "1"], "is a file"),
        (["synth", "--video", str(tmp_path), "--frames", "1"], "is a folder"),
        (
            ["synth", "--video", str(tmp_path / "v.txt"), "--frames", "1", "--width", "64", "--height", "48"],
            "video writer",
        ),
        (["cache", "--out", str(afile), "--n", "1"], "is a file"),
        (["train", "--data", str(tmp_path / "missing")], "not a training cache"),
        (["train", "--data", cache, "--val", str(tmp_path / "missing")], "--val"),
        (["train", "--data", cache, "--out", str(afile)], "is a file"),
        (
            ["train", "--data", cache, "--out", str(tmp_path / "r"), "--init", str(garbage), "--steps", "1"],
            "cannot load checkpoint",
        ),
        (["evaluate", "--data", str(tmp_path / "missing")], "no such file"),
        (["evaluate", "--data", cache, "--weights", str(tmp_path / "missing.safetensors")], "not found"),
        (["evaluate", "--data", cache, "--weights", str(garbage)], "cannot load checkpoint"),
        (["demo", "--source", cache, "--headless", "--line", "a,b,c,d"], "four numbers"),
    ]
    # weights beside a card that describes another network (another width)
    from apps.perception.model import CenterNet

    other = tmp_path / "other"
    other.mkdir()
    fw.save(CenterNet(width=0.25).state_dict(), str(other / "w.safetensors"))
    (other / "model_card.json").write_text(json.dumps(dict(input_size=64, architecture=dict(width=0.5))))
    cases.append((["evaluate", "--data", cache, "--weights", str(other / "w.safetensors")], "do not fit"))
    from framework.backend import cuda_available

    if not cuda_available():  # no GPU: said at once, by every command that takes --device
        cases += [
            ([*argv, "--device", "cuda"], "--device cuda")
            for argv in (
                ["train", "--data", cache, "--out", str(tmp_path / "r")],
                ["evaluate", "--data", cache],
                ["demo", "--source", cache, "--headless"],
            )
        ]
    for argv, msg in cases:
        with pytest.raises(SystemExit) as e:
            main(argv)
        text = str(e.value.code)
        assert msg in text and "Traceback" not in text and "\n" not in text, (argv, text)
    assert afile.read_text() == "x"


def test_ctrl_c_in_train_exits_130_and_says_how_to_resume(cache, tmp_path, monkeypatch, capsys):
    import apps.perception.train as T

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "train", interrupted)
    with pytest.raises(SystemExit) as e:
        main(["train", "--data", cache, "--out", str(tmp_path / "r")])
    assert e.value.code == 130 and "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("value", [["abc"], ["0"], []])
def test_threads_must_be_a_positive_whole_number(value):
    from apps.perception.__main__ import main

    with pytest.raises(SystemExit, match="--threads needs a whole number"):
        main(["synth", "--threads", *value])


@pytest.mark.parametrize(
    "command, flip, threads, blas",
    [
        ("demo", False, "2", "2"),
        ("demo", True, "2", "1"),
        ("train", False, "2", "1"),
        ("evaluate", False, "3", "1"),
        ("train", False, "1", "1"),
        ("track", False, "2", "2"),
    ],
)
def test_threads_go_to_blas_and_convolutions(command, flip, threads, blas, monkeypatch):
    """--threads N sets BLAS and the convolutions' threads. Batched work (train, evaluate, --flip-test)
    runs over groups of images on the framework's N threads and BLAS keeps one (its threads would contend
    with them); single frames (demo, track) give BLAS the N threads."""
    from apps.perception.__main__ import _set_threads

    for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FRAMEWORK_CONV_THREADS"):
        monkeypatch.delenv(v, raising=False)
    argv = [command, "--threads", threads] + (["--flip-test"] if flip else [])
    _set_threads(argv)
    assert argv == [command] + (["--flip-test"] if flip else [])
    assert os.environ["FRAMEWORK_CONV_THREADS"] == threads
    assert os.environ["OPENBLAS_NUM_THREADS"] == os.environ["OMP_NUM_THREADS"] == blas


def test_resume_with_other_training_options_is_refused(cache, tmp_path):
    # a resume with another --lr / --batch / --seed would silently stop reproducing the run it continues
    import apps.perception.train as T

    T.train(cache, str(tmp_path / "r"), steps=2, **KW)
    for change in (dict(lr=6e-3), dict(batch=KW["batch"] + 1), dict(seed=7)):
        with pytest.raises(ValueError, match=f"--resume: .* started with --{next(iter(change))} "):
            T.train(cache, str(tmp_path / "r"), steps=4, resume=True, **{**KW, **change})
    assert _strict_json(tmp_path / "r" / "state.json")["step"] == 2  # nothing trained or overwritten
    # the same options resume; a longer --steps extends the run
    assert T.train(cache, str(tmp_path / "r"), steps=4, resume=True, **KW)["step"] == 4


def test_a_stream_that_never_comes_up_is_a_one_line_error_after_the_timeout(capsys):
    with pytest.raises(SystemExit) as e:
        main(
            [
                "demo",
                "--source",
                "rtsp://admin:pw@127.0.0.1:1/live",
                "--headless",
                "--reconnect-timeout",
                "0.6",
            ]
        )
    text = str(e.value.code)
    assert text.startswith("error: cannot open stream") and "not reachable after 0.6 s" in text
    assert "\n" not in text and "pw@" not in text
    assert "source: connecting" in capsys.readouterr().err  # the wait was said, not silent


@pytest.mark.parametrize("flag, agnostic", [([], False), (["--across-classes"], True)])
def test_track_across_classes_reaches_the_tracker(tmp_path, flag, agnostic, monkeypatch, capsys):
    """``track --across-classes`` makes the pipeline's SORT associate regardless of class."""
    import cv2

    import apps.perception.demo as D

    made = []
    real = D.Sort

    def spy(*a, **k):
        made.append(k)
        return real(*a, **k)

    monkeypatch.setattr(D, "Sort", spy)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((48, 64, 3), 90, np.uint8))
    main(["track", "--source", str(folder), "--headless", "--every-frame", *flag])
    assert made == [{"class_agnostic": agnostic}]
    assert "frames 2" in capsys.readouterr().out


def test_evaluate_save_json_never_overwrites_the_data(tiny_weights, tmp_path):
    from apps.perception.synth import write_dataset

    data = tmp_path / "data"
    write_dataset(str(data), 2, 3, 160, 120)
    ann = data / "annotations.json"
    before = ann.read_bytes()
    cmd = [
        sys.executable,
        "-m",
        "apps.perception",
        "evaluate",
        "--data",
        str(data),
        "--weights",
        tiny_weights,
    ]
    r = subprocess.run(cmd + ["--save-json", str(ann)], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "write the detections elsewhere" in r.stderr
    assert ann.read_bytes() == before
    out = tmp_path / "dets.json"
    r = subprocess.run(cmd + ["--save-json", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(out.read_text()), list)


def test_synth_refuses_a_non_empty_folder_before_rendering_anything(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    video = tmp_path / "clip.mp4"
    with pytest.raises(SystemExit, match="not empty"):
        main(["synth", "--out", str(out), "--n", "1", "--video", str(video), "--frames", "2"])
    assert not video.exists() and os.listdir(out) == ["notes.txt"]
