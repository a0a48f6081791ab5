"""Benchmarks: `python -m benchmarks.run` runs the suite; the other modules also run alone.

harness (cases in processes, Ray, machine, measures, result files) and simulated (the
fixed-latency generator) are shared; workload is what the translation-shaped cases run.
"""
