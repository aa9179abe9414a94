"""Release gates: the differential test, the benchmark, A/B verdicts, and one gate for CI."""
