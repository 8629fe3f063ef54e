"""The committed model: loads with its card, finds what the bundled samples show, and its gate output
rejects real (non-synthetic) CT, MR, ultrasound and nuclear-medicine images from pydicom's test files."""

import pytest
from pydicom.data import get_testdata_file

import apps.dicom_dx as dx
from apps.dicom_dx.data import preprocess
from apps.dicom_dx.inference import ASSETS

pytestmark = pytest.mark.skipif(not (ASSETS / "model.safetensors").exists(), reason="no committed model")


@pytest.fixture(scope="module")
def pred():
    return dx.load_default_model()


def test_card_matches_model(pred):
    card = dx.model_card()
    assert card["findings"] == list(dx.FINDINGS) and card["outputs"][-1] == "frontal_chest"
    assert set(pred.thresholds) == set(dx.FINDINGS) and 0 < pred.gate_config.image_threshold < 1
    assert card["test"]["held_out_seed3_400_700px"]["macro_auroc"] >= 0.95
    assert card["retrain"] and card["preprocessing"]["size"] == pred.size


def test_bundled_samples(pred):
    out = {f.stem: dx.predict(f, pred) for f in dx.sample_files()}
    assert not out["knee"].accepted and not out["ct_slice"].accepted
    assert out["knee"].findings == {} and out["ct_slice"].probabilities == {}
    assert out["chest_normal"].accepted and out["chest_normal"].no_finding
    assert out["chest_effusion_cardiomegaly"].findings["effusion"]
    assert out["chest_effusion_cardiomegaly"].findings["cardiomegaly"]
    assert out["chest_pneumothorax"].findings["pneumothorax"] and out["chest_nodule"].findings["nodule"]
    assert out["chest_opacity"].findings["opacity"]


@pytest.mark.parametrize(
    "name",
    [
        "693_J2KI.dcm",
        "liver_1frame.dcm",
        "examples_overlay.dcm",
        "examples_ybr_color.dcm",
        "examples_palette.dcm",
        "JPEG2000.dcm",
        "image_dfl.dcm",
    ],
)
def test_gate_image_check_rejects_real_non_chest_images(pred, name):
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} not bundled")
    img = dx.read_dicom(path)
    p_chest = pred.probabilities(preprocess(img.gray, pred.size)[None])[0, -1]
    assert p_chest < pred.gate_config.image_threshold
