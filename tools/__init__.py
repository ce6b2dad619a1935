"""Command-line tools beside the pipeline: run each as `python -m tools.NAME --help` from the
repository root."""
