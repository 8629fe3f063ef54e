"""Loaders on tiny fixtures in each public format, written by the tests."""

import cv2
import numpy as np
import pytest

from apps.dicom_dx import loaders as L
from apps.dicom_dx.synth import FINDINGS, make_study, to_dataset, write_dataset

IDX = {f: i for i, f in enumerate(FINDINGS)}


def test_rsna(tmp_path):
    (tmp_path / "stage_2_train_images").mkdir()
    (tmp_path / "stage_2_train_labels.csv").write_text(
        "patientId,x,y,width,height,Target\naaa,10,20,30,40,1\naaa,50,60,10,10,1\nbbb,,,,,0\n"
    )
    rng = np.random.default_rng(0)
    for pid in ("aaa", "bbb"):
        write_dataset(
            to_dataset(make_study(rng, size_range=(64, 70), render_max=64), rng),
            tmp_path / "stage_2_train_images" / f"{pid}.dcm",
        )
    recs = {r.group: r for r in L.load_rsna(tmp_path)}
    assert recs["aaa"].labels[IDX["opacity"]] == 1 and len(recs["aaa"].extra["boxes"]) == 2
    assert recs["bbb"].labels[IDX["opacity"]] == 0 and np.isnan(recs["bbb"].labels[IDX["nodule"]])
    assert recs["aaa"].path.exists()
    assert len(L.load_any(tmp_path)) == 2


def test_nih(tmp_path):
    (tmp_path / "images_001" / "images").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images_001" / "images" / "00000001_000.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "Data_Entry_2017.csv").write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"
        "00000001_000.png,Cardiomegaly|Effusion,0,1,58,M,PA\n"
        "00000002_000.png,No Finding,0,2,40,F,AP\n"
        "00000003_000.png,Mass|Infiltration,0,3,40,F,LL\n"
    )
    recs = L.load_nih(tmp_path)
    assert len(recs) == 2  # the lateral (LL) view is left out
    np.testing.assert_array_equal(recs[0].labels, [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(recs[1].labels, [0, 0, 0, 0, 0])
    assert recs[0].path.exists()


@pytest.mark.parametrize("policy, expected", [("ones", 1.0), ("zeros", 0.0), ("ignore", np.nan)])
def test_chexpert_uncertainty_policies(tmp_path, policy, expected):
    (tmp_path / "train.csv").write_text(
        "Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Cardiomegaly,Lung Opacity,Lung Lesion,Consolidation,"
        "Pneumonia,Pneumothorax,Pleural Effusion\n"
        "CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg,F,68,Frontal,AP,,-1.0,1.0,,,,0.0,\n"
        "CheXpert-v1.0-small/train/patient00002/study1/view1_lateral.jpg,F,68,Lateral,,,1.0,,,,,,\n"
    )
    recs = L.load_chexpert(tmp_path, uncertain=policy)
    assert len(recs) == 1 and recs[0].group == "patient00001"
    lab = recs[0].labels
    assert lab[IDX["opacity"]] == 1 and lab[IDX["pneumothorax"]] == 0 and lab[IDX["effusion"]] == 0
    np.testing.assert_equal(lab[IDX["cardiomegaly"]], expected)
    assert str(recs[0].path).endswith("train/patient00001/study1/view1_frontal.jpg")
    with pytest.raises(ValueError):
        L.load_chexpert(tmp_path, uncertain="maybe")


def test_medmnist(tmp_path):
    chest = np.zeros((3, 14), np.uint8)
    chest[0, 1] = 1  # cardiomegaly
    chest[1, 4] = 1  # mass → nodule
    chest[2, 3] = 1  # infiltration → opacity
    np.savez(
        tmp_path / "chestmnist.npz", train_images=np.full((3, 28, 28), 255, np.uint8), train_labels=chest
    )
    recs = L.load_medmnist(tmp_path / "chestmnist.npz")
    assert [int(np.nanargmax(r.labels)) for r in recs] == [IDX["cardiomegaly"], IDX["nodule"], IDX["opacity"]]
    assert recs[0].image.max() == 1.0 and recs[0].image.shape == (28, 28)
    np.savez(
        tmp_path / "pneumoniamnist.npz",
        val_images=np.zeros((2, 28, 28), np.uint8),
        val_labels=np.array([[0], [1]]),
    )
    recs = L.load_medmnist(tmp_path / "pneumoniamnist.npz", split="val")
    assert [r.labels[IDX["opacity"]] for r in recs] == [0, 1] and np.isnan(recs[0].labels[IDX["nodule"]])


def test_split_is_by_group_and_stable():
    recs = [L.Record(path=None, labels=np.zeros(5, np.float32), group=f"p{i // 3}") for i in range(300)]
    a, b = L.split_records(recs, (0.8, 0.2), seed=1)
    assert len(a) + len(b) == 300 and 0.6 < len(a) / 300 < 0.95
    assert not ({r.group for r in a} & {r.group for r in b})
    a2, _ = L.split_records(recs, (0.8, 0.2), seed=1)
    assert [r.group for r in a] == [r.group for r in a2]


def test_unknown_layout(tmp_path):
    with pytest.raises(ValueError, match="no known data set layout"):
        L.load_any(tmp_path)
