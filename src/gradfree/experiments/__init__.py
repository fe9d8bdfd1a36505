"""Benchmarks: registered suites of trials, trial kinds (training and the applications' own), the resumable
runner and the results rows every report is drawn from."""
