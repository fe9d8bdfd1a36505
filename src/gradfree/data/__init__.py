"""Datasets (one per file) and the store that locates, downloads and verifies their files."""
