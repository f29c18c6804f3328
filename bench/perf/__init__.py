"""`make bench`: ACE's speed, each figure beside a baseline measured in the
same run (python -m bench.perf). See docs/benchmarks.md for the table."""
