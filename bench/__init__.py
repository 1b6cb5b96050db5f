"""Benchmarks of the dispatcher's fan-out, send pipeline, broker memory and worker RSS (`python -m bench`)."""
