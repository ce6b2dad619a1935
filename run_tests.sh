#!/usr/bin/env bash
# Sets up .venv and runs the test suite (add -m slow to run only the heavier tests,
# or RUN_SLOW=1 to run everything).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL=2
if [ "${RUN_SLOW:-0}" = "1" ]; then
  exec .venv/bin/python -m pytest -q "$@"
fi
# Most of a test's time is single-threaded (tracing tf.functions, numpy, building batches), so
# two workers, each taking whole test files (module fixtures stay shared), use both cores. The
# 10 slowest tests are listed at the end (the README's figures).
exec .venv/bin/python -m pytest -q -m "not slow" -n "${TEST_WORKERS:-2}" --dist loadfile \
  --durations=10 "$@"
