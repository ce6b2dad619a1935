"""Puts the repository root on sys.path and keeps TensorFlow quiet and small on 2 CPU cores."""

import os
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: heavier tests, run in CI only when time allows')
