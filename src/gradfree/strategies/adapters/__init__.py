"""Strategies that wrap another library's optimizer (pycma, nevergrad) behind the ask/tell contract."""
