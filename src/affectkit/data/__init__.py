"""Data layer: media readers, datasets, transforms, synthetic data."""
