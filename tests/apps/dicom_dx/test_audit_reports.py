"""Audit regressions for metrics (NaN scores, empty calibration) and the DICOM objects written back
to PACS (Basic Text SR, Secondary Capture): character set, type 2 attributes, pixel module."""

import numpy as np
import pytest

from apps.dicom_dx import metrics as M


def test_nan_score_is_an_error_not_silently_dropped():
    """A NaN probability (diverged model) must not shrink the evaluated set without a word: before,
    the NaN-scored positive was dropped and AUROC read 1.0 on the rest."""
    y = np.array([1, 1, 0, 0])
    s = np.array([0.9, np.nan, 0.2, 0.1])
    for fn in (M.auroc, M.roc_curve, M.expected_calibration_error):
        with pytest.raises(ValueError, match="NaN"):
            fn(y, s)
    with pytest.raises(ValueError, match="NaN"):
        M.sens_spec(y, s, 0.5)
    with pytest.raises(ValueError, match="NaN"):
        M.operating_threshold(y, s, 0.9)


def test_nan_labels_are_still_left_out():
    y = np.array([1, np.nan, 0, 0])
    s = np.array([0.9, 0.5, 0.2, 0.1])
    assert M.auroc(y, s) == 1.0 and M.confusion(y, s, 0.5) == {"tp": 1, "fp": 0, "tn": 2, "fn": 0}


def test_ece_without_labelled_samples_is_nan_not_perfect():
    assert np.isnan(M.expected_calibration_error(np.full(3, np.nan), np.array([0.1, 0.5, 0.9])))
    assert np.isnan(M.expected_calibration_error(np.zeros(0), np.zeros(0)))
    rep = M.multilabel_report(np.full((3, 1), np.nan), np.full((3, 1), 0.3), ["a"], {"a": 0.5})
    assert np.isnan(rep["findings"]["a"]["ece"]) and np.isnan(rep["findings"]["a"]["auroc"])


def test_auroc_one_class_is_nan_and_sens_spec_by_hand_with_ties():
    assert np.isnan(M.auroc([1, 1, 1], [0.2, 0.4, 0.9]))
    assert np.isnan(M.auroc([0, 0], [0.2, 0.4]))
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.8, 0.5, 0.5, 0.5, 0.3, 0.3, 0.9])
    # pairs (pos, neg): 0.8 beats 3 of 4 negatives; each 0.5 beats 2, ties 1, loses to 0.9.
    assert abs(M.auroc(y, s) - (3 + 2.5 + 2.5) / 12) < 1e-12
    sens, spec = M.sens_spec(y, s, 0.5)  # rule: score >= threshold, ties go positive
    assert (sens, spec) == (1.0, 0.5)


# --- DICOM written back to PACS -------------------------------------------------------------------


def _source(path, charset, name, *, patient=True):
    """A tiny DX instance; `patient=False` leaves out every type 2 Patient/Study attribute."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    if charset:
        ds.SpecificCharacterSet = charset
    if patient:
        ds.PatientName, ds.PatientID, ds.StudyDate = name, "ID-1", "20260101"
    ds.Modality, ds.Rows, ds.Columns = "DX", 4, 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((4, 4), np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def _prediction():
    from apps.dicom_dx.gate import GateDecision
    from apps.dicom_dx.inference import Prediction
    from apps.dicom_dx.synth import FINDINGS

    return Prediction(
        gate=GateDecision(True, "", "", 0.99),
        probabilities={f: 0.2 for f in FINDINGS},
        findings={f: False for f in FINDINGS},
        thresholds={f: 0.5 for f in FINDINGS},
        model_version="test",
    )


TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")  # fmt: skip


@pytest.mark.parametrize(
    "charset, name",
    [
        ("ISO_IR 100", "Müller^Jürgen"),
        ("ISO_IR 192", "Łukasiewicz^Zoë"),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎"),
    ],
)
def test_written_objects_keep_non_ascii_names_under_a_declared_character_set(tmp_path, charset, name):
    """Before: no Specific Character Set was written, so a Latin-1 name went out as bytes outside
    the default repertoire (read back garbled by a strict reader), and a Japanese one could not be
    encoded at all."""
    import pydicom

    from apps.dicom_dx.report import write_secondary_capture, write_text_sr

    src = _source(tmp_path / "src.dcm", charset, name)
    paths = [
        write_text_sr(src, _prediction(), tmp_path / "sr.dcm"),
        write_secondary_capture(src, np.zeros((3, 5, 3), np.uint8), tmp_path / "sc.dcm"),
    ]
    for p in paths:
        ds = pydicom.dcmread(p)
        assert ds.SpecificCharacterSet in ("ISO_IR 192", ["ISO_IR 192"])
        assert str(ds.PatientName) == name
        assert name.split("^")[0].encode("utf-8") in p.read_bytes()


def test_text_sr_has_every_type_2_attribute_and_points_at_the_source(tmp_path):
    import pydicom

    from apps.dicom_dx.report import BASIC_TEXT_SR, write_text_sr

    src = _source(tmp_path / "src.dcm", None, "", patient=False)
    s = pydicom.dcmread(src)
    sr = pydicom.dcmread(write_text_sr(src, _prediction(), tmp_path / "sr.dcm"))
    for k in (*TYPE2, "ReferencedPerformedProcedureStepSequence", "PerformedProcedureCodeSequence"):
        assert k in sr, k  # type 2: present even when the source has no value
    assert sr.SOPClassUID == sr.file_meta.MediaStorageSOPClassUID == BASIC_TEXT_SR
    assert sr.SOPInstanceUID == sr.file_meta.MediaStorageSOPInstanceUID != s.SOPInstanceUID
    assert sr.StudyInstanceUID == s.StudyInstanceUID and sr.SeriesInstanceUID != s.SeriesInstanceUID
    assert sr.TimezoneOffsetFromUTC == "+0000" and len(sr.ContentDate) == 8
    (ref,) = sr.ContentSequence[0].ReferencedSOPSequence
    assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (s.SOPClassUID, s.SOPInstanceUID)
    ev = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == s.StudyInstanceUID
    assert ev.ReferencedSeriesSequence[0].SeriesInstanceUID == s.SeriesInstanceUID


@pytest.mark.parametrize("shape", [(5, 7, 3), (5, 7)])
def test_secondary_capture_pixel_module_matches_its_pixels(tmp_path, shape):
    """Before: a (H, W) image was written with Samples per Pixel 3 and a third of the bytes
    (pydicom then refused to decode it)."""
    import highdicom
    import pydicom

    from apps.dicom_dx.report import SECONDARY_CAPTURE, write_secondary_capture

    src = _source(tmp_path / "src.dcm", None, "Doe^J", patient=False)
    px = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    path = write_secondary_capture(src, px, tmp_path / "sc.dcm")
    sc = pydicom.dcmread(path)
    np.testing.assert_array_equal(highdicom.imread(str(path)).get_frame(1), px)  # highdicom reads it too
    assert sc.SOPClassUID == SECONDARY_CAPTURE and (sc.Rows, sc.Columns) == shape[:2]
    assert sc.SamplesPerPixel == (3 if len(shape) == 3 else 1)
    assert sc.PhotometricInterpretation == ("RGB" if len(shape) == 3 else "MONOCHROME2")
    np.testing.assert_array_equal(sc.pixel_array, px)
    for k in (*TYPE2, "PatientOrientation", "ConversionType"):
        assert k in sc, k


def test_secondary_capture_refuses_pixels_it_would_corrupt(tmp_path):
    """Before: a float overlay in [0, 1] was cast to uint8, i.e. written as an all-black image."""
    from apps.dicom_dx.report import write_secondary_capture

    src = _source(tmp_path / "src.dcm", None, "Doe^J")
    for bad in (np.full((4, 4, 3), 0.9), np.zeros((4, 4, 4), np.uint8), np.zeros((0, 4, 3), np.uint8)):
        with pytest.raises(ValueError, match="secondary capture pixels"):
            write_secondary_capture(src, bad, tmp_path / "bad.dcm")
    assert not (tmp_path / "bad.dcm").exists()


# --- evaluate ---------------------------------------------------------------------------------------


def _strict_json(path):
    import json

    def no_constant(c):
        raise AssertionError(f"non-standard JSON constant {c}")

    return json.loads(path.read_text(), parse_constant=no_constant)


def test_evaluate_writes_strict_json_and_counts_non_finite_outputs(
    tmp_path, tiny_synth, tiny_predictor, monkeypatch
):
    """Before: undefined metrics went out as bare NaN (not JSON: strict parsers refuse the file), and
    one image with a non-finite model output made the evaluation either drop it without a word or
    (with the NaN check in metrics) fail as a whole."""
    from apps.dicom_dx.evaluate import evaluate

    base = evaluate(tiny_synth, tiny_predictor, workers=0, out_json=tmp_path / "a.json")
    doc = _strict_json(tmp_path / "a.json")  # a finding present in all 6: no negative, NaN specificity
    assert doc["n_scored_chest"] == base["n_scored_chest"] == 6 and doc["n_nonfinite_outputs"] == 0
    assert any(f["specificity"] is None for f in doc["findings"].values())
    assert any(np.isnan(f["specificity"]) for f in base["findings"].values())  # the dict keeps NaN

    # patched on the class (as test_audit_batch does): undoing a patch of the shared instance would leave
    # a copy of the bound method on it, hiding later class-level patches in other tests
    orig = type(tiny_predictor).probabilities
    calls = []

    def first_row_nan(self, x):
        p = orig(self, x)
        if not calls:
            p[0, 1] = np.nan
        calls.append(1)
        return p

    monkeypatch.setattr(type(tiny_predictor), "probabilities", first_row_nan)
    rep = evaluate(tiny_synth, tiny_predictor, workers=0, out_json=tmp_path / "b.json")
    assert rep["n_nonfinite_outputs"] == 1 and rep["n_scored_chest"] in (5, 6)
    assert _strict_json(tmp_path / "b.json")["n_nonfinite_outputs"] == 1


# --- Grad-CAM ---------------------------------------------------------------------------------------


def test_gradcam_zero_gradient_gives_a_zero_map_and_maps_stay_in_unit_range(tiny_predictor):
    """A finding whose head row is zero has ∂logit/∂A = 0: its map is all zeros (not NaN), the others
    keep the input's shape and [0, 1]."""
    from apps.dicom_dx.explain import gradcam
    from apps.dicom_dx.synth import FINDINGS

    w = tiny_predictor.model.head.weight.data  # the raw array: zero one row in place, restore after
    saved = w.copy()
    try:
        w[FINDINGS.index("nodule")] = 0
        x = np.random.default_rng(3).standard_normal((1, 32, 32)).astype(np.float32)
        cams = gradcam(tiny_predictor, x)
    finally:
        w[...] = saved
    assert np.all(cams["nodule"] == 0)
    for c in cams.values():
        assert c.shape == (32, 32) and c.dtype == np.float32 and np.isfinite(c).all()
        assert c.min() >= 0 and c.max() <= 1


def test_operating_threshold_between_adjacent_scores_keeps_the_negative_out():
    """Before: with the highest negative one ulp below the positives, the midpoint rounded onto the
    negative's score and the chosen rule (score ≥ t) counted it as a false positive."""
    for hi in (1.0, 0.5, 0.3, 0.7):
        y, s = [1, 1, 0, 0], [hi, hi, np.nextafter(hi, 0), 0.1]
        t = M.operating_threshold(y, s, 0.9)
        assert M.sens_spec(y, s, t) == (1.0, 1.0), hi


def test_threshold_without_positives_is_an_error_not_a_silent_half():
    """Before: no positive case gave 0.5, indistinguishable from a threshold chosen at the sensitivity."""
    y, s = np.array([0, 0, 0]), np.array([0.2, 0.7, 0.4])
    for fn in (M.threshold_at_sensitivity, M.operating_threshold):
        with pytest.raises(ValueError, match="no positive case"):
            fn(y, s, 0.9)


def test_findings_without_validation_positives_default_with_a_warning_and_are_recorded():
    from apps.dicom_dx.model import FINDINGS
    from apps.dicom_dx.train import choose_thresholds

    rng = np.random.default_rng(0)
    n = 40
    labels = rng.integers(0, 2, (n, len(FINDINGS))).astype(np.float32)
    labels[:, 1] = 0  # no positive for the second finding
    chest = np.ones(n, np.int64)
    chest[:5] = 0
    p = rng.random((n, len(FINDINGS) + 1)).astype(np.float32)
    with pytest.warns(UserWarning, match=f"no positive validation case for {FINDINGS[1]}"):
        thr, gate, defaulted = choose_thresholds(p, labels, chest, 0.9, 0.99)
    assert defaulted == [FINDINGS[1]] and thr[FINDINGS[1]] == 0.5
    assert thr[FINDINGS[0]] == M.operating_threshold(labels[5:, 0], p[5:, 0], 0.9)
    assert gate == M.operating_threshold((chest == 1).astype(np.float32), p[:, -1], 0.99)
