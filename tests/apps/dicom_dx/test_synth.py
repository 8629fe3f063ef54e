"""The generator writes valid DICOM that our reader and pydicom agree on, with labels and no PHI leak."""

import csv

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, pixel_array
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from apps.dicom_dx.io import read_dicom
from apps.dicom_dx.synth import FINDINGS, generate, make_study, to_dataset, write_dataset


def test_files_decode_identically_with_pydicom(tiny_synth):
    rows = list(csv.DictReader(open(tiny_synth / "labels.csv")))
    assert len(rows) == 15 and sum(r["kind"] == "chest" for r in rows) == 6
    kinds = {r["kind"] for r in rows}
    assert {"knee", "ct", "mr", "us", "photo"} <= kinds
    for r in rows:
        img = read_dicom(tiny_synth / r["file"])
        ds = pydicom.dcmread(tiny_synth / r["file"])
        ref = pixel_array(ds)
        if ds.SamplesPerPixel == 1:
            np.testing.assert_allclose(img.values, apply_modality_lut(ref, ds), rtol=1e-6)
        if r["kind"] == "chest":
            assert (
                ds.Modality in ("CR", "DX")
                and ds.BodyPartExamined == "CHEST"
                and ds.ViewPosition in ("PA", "AP")
            )
            assert 10 <= ds.BitsStored <= 16 and ds.PhotometricInterpretation in (
                "MONOCHROME1",
                "MONOCHROME2",
            )
            assert img.meta.pixel_spacing is not None
            labels = [int(r[f]) for f in FINDINGS]
            assert int(r["no_finding"]) == int(not any(labels))
        assert str(ds.PatientName) and str(ds.PatientName) not in open(tiny_synth / "labels.csv").read()


@pytest.mark.parametrize(
    "ts",
    [
        ExplicitVRLittleEndian,
        ImplicitVRLittleEndian,
        RLELossless,
        JPEGLSLossless,
        JPEG2000Lossless,
        DeflatedExplicitVRLittleEndian,
    ],
)
def test_transfer_syntaxes_round_trip(tmp_path, ts):
    rng = np.random.default_rng(3)
    study = make_study(rng, size_range=(80, 90), render_max=80)
    ds = to_dataset(study, rng, transfer_syntax=ts)
    write_dataset(ds, tmp_path / "a.dcm")
    back = pydicom.dcmread(tmp_path / "a.dcm")
    assert back.file_meta.TransferSyntaxUID == ts
    img = read_dicom(tmp_path / "a.dcm")
    np.testing.assert_allclose(img.values, apply_modality_lut(pixel_array(back), back), rtol=1e-6)


def test_findings_change_the_image_where_the_box_says(tmp_path):
    """Same seed with and without a nodule: pixels differ mostly inside the nodule's box."""
    from apps.dicom_dx.synth import render_chest

    base, _ = render_chest(np.random.default_rng(11), (128, 128), {})
    with_nod, masks = render_chest(np.random.default_rng(11), (128, 128), {"nodule": 1})
    diff = np.abs(with_nod - base)
    m = masks["nodule"] > 0.3
    assert m.any() and diff[m].mean() > 10 * diff[~m].mean()


def test_generation_is_deterministic(tmp_path):
    a = generate(tmp_path / "a", 2, seed=5, size_range=(64, 70), render_max=64)
    b = generate(tmp_path / "b", 2, seed=5, size_range=(64, 70), render_max=64)
    for name in ("chest/000000.dcm", "chest/000001.dcm"):
        np.testing.assert_array_equal(read_dicom(a.parent / name).values, read_dicom(b.parent / name).values)


def test_synthetic_patient_ids_are_unique_and_other_attributes_unchanged():
    """One patient per synthetic study: 20000 studies get 20000 patient IDs (the 7 random digits alone
    collide ~20 times at this count, merging patients in grouped splits), and making the ID unique
    draws nothing more from the file's generator."""
    import numpy as np
    from pydicom.dataset import Dataset

    from apps.dicom_dx.synth import _FIRST, _LAST, _patient, _uid

    ids, prefixes = set(), set()
    for i in range(20000):
        rng = np.random.default_rng([7, i])
        ds = Dataset()
        ds.StudyInstanceUID = _uid(rng)
        _patient(ds, rng)
        ids.add(ds.PatientID)
        prefixes.add(ds.PatientID.split("-")[0])
        if i == 0:
            first = ds
    assert len(ids) == 20000 and len(prefixes) < 20000
    # the draws after the ID are those of the stream before the change: PID digits, then the rest
    rng = np.random.default_rng([7, 0])
    _uid(rng)
    rng.choice(_LAST), rng.choice(_FIRST)  # the name
    assert first.PatientID.startswith(f"PID{int(rng.integers(10**6, 10**7))}-")
    assert first.PatientBirthDate.startswith(str(int(rng.integers(1930, 2005))))
