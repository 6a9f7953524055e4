"""Benchmarks (scripts that print tables, never timed unit tests): ``python -m matting.bench classical|models``."""
