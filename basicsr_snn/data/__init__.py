"""Datasets and data tools; ``basicsr_snn/__init__.py`` registers every ``*_dataset.py`` here."""
