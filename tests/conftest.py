"""Puts the repository root on sys.path, keeps TensorFlow quiet and small on 2 CPU cores,
registers the markers and holds the fixtures that several test modules share.

Markers:
    slow   heavier tests (minutes), run in CI only when time allows
    cli    runs a script of the repository's command line: in this process (helpers.run_main)
           or, where a process is what is tested, in another (kill -9, a server, several
           replicas or workers, a fresh process's exit status)
    eager  (a module's pytestmark) runs its tf.functions eagerly, module fixtures included:
           for the modules that test the pipeline around the network (scripts, files, logs,
           resume, the recipes), where tracing the graph took most of the time; the graph
           itself is tested in test_cmpc_model, test_video_model, test_trainer and
           test_golden, and the scripts' own processes (the slow tests) run it as users do

    .venv/bin/python -m pytest -q -m "not slow and not cli"   # the fast inner loop
    .venv/bin/python -m pytest -q -m "not slow"               # the default suite (run_tests.sh)
"""

import os
import sys

import pytest

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from helpers import TINY, PredictRun, make_workspace  # noqa: E402  (tests/ is on sys.path)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: heavier tests, run in CI only when time allows')
    config.addinivalue_line('markers', 'cli: runs a script of the repository\'s command line '
                                       '(deselect with -m "not cli" for a fast inner loop)')
    config.addinivalue_line('markers', 'eager: (module) runs its tf.functions eagerly')


@pytest.fixture(scope='module', autouse=True)
def tf_functions_eagerly(request):
    """In a module marked eager, tf.functions run as Python (tf.config.run_functions_eagerly)
    for its fixtures and tests; other modules trace them as the programs do."""
    if request.node.get_closest_marker('eager') is None:
        yield False
        return
    import tensorflow as tf
    tf.config.run_functions_eagerly(True)
    try:
        yield True
    finally:
        tf.config.run_functions_eagerly(False)


# ---------------------------------------------------------------------------------------------
# predict mode's workspace: test_predict.py and test_export.py

@pytest.fixture(scope='session')
def predict_workspace(tmp_path_factory):
    """(root, model that wrote the checkpoint, paths): a tiny checkpoint recording its
    vocabulary, the vocabulary and helpers.IMAGES, in one folder for the session."""
    root = str(tmp_path_factory.mktemp('predict'))
    model, paths = make_workspace(root)
    return root, model, paths


@pytest.fixture(scope='session')
def predict_run(predict_workspace):
    """Predict mode on every image and sentence of the workspace, run in this process when a
    test first asks for .result() (helpers.PredictRun)."""
    root, _, paths = predict_workspace
    run = PredictRun(root, paths)
    yield run
    run.stop()


@pytest.fixture(scope='session')
def predicted(predict_run):
    """(out dir, stdout, stderr) of predict mode on the workspace."""
    return predict_run.result()


# ---------------------------------------------------------------------------------------------
# the fast paths' faithful reference: test_cmpc_model.py (forward) and test_trainer.py (train step)

@pytest.fixture(scope='session')
def fast_path_setup(tmp_path_factory):
    """(checkpoint prefix, words [3, 20], im [3, 64, 64, 3], mask [3, 64, 64, 1], ref): a TINY
    model with random weights and a calibrated backbone, saved; ref holds its outputs on the
    faithful path (fp32, no XLA, batch 1, one sample at a time), concatenated."""
    import numpy as np
    import tensorflow as tf
    from CMPC_model import LSTM_model
    tf.random.set_seed(3)
    model = LSTM_model(mode='eval', **TINY)
    rng = np.random.RandomState(0)
    # Unit-scale backbone features, as with real weights (random BN statistics explode).
    model.backbone.calibrate((rng.randn(4, 64, 64, 3) * 50).astype(np.float32))
    prefix = str(tmp_path_factory.mktemp('fast') / 'm')
    model.save(prefix)
    words = np.zeros((3, 20), np.int32)
    words[0, 15:] = [3, 4, 5, 6, 7]
    words[1, 5:] = rng.randint(1, 50, 15)
    words[2, 18:] = [9, 10]
    im = (rng.randn(3, 64, 64, 3) * 50).astype(np.float32)
    mask = (rng.rand(3, 64, 64, 1) > 0.5).astype(np.float32)
    # The faithful reference: batch 1, one sample at a time.
    ref = [model.forward(words[i:i + 1], im[i:i + 1]) for i in range(3)]
    ref = {k: np.concatenate([r[k] for r in ref]) for k in ref[0]}
    return prefix, words, im, mask, ref
