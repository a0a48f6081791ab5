"""Benchmarks: `python -m benchmarks.run` runs the suite; the other modules also run alone. Not an
installed package: run them from the repository root (python -m puts it on the path, and Ray's
workers get the driver's working directory on theirs).

harness (cases in processes, Ray, machine, measures, result files) and simulated (the
fixed-latency generator) are shared; workload is what the translation-shaped cases run.
"""
