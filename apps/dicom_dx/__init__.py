"""Chest-radiograph diagnosis from DICOM."""
