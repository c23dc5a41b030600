"""`koepon bench`: throughput, latency, contention and scale, as ratios against same-run baselines."""
