"""The benchmarks: `python -m bench.run` (from the repository root) runs them and prints tables;
`--only NAME --json bench/tables` writes one part's JSON, which `python -m bench.report` renders
into the README and docs/results. Each module also runs alone: `python -m bench.encode`, ..."""
