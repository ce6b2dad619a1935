"""The command-line scripts are leaves: no module of the pipeline imports trainval_model.py or
the video scripts, neither in its source nor by importing something that does. The models import
nothing of training (the trainer, the optimizer, the loss)."""

import ast
import glob
import os
import subprocess
import sys

from helpers import ROOT

SCRIPTS = ('trainval_model', 'CMPC_video.trainval_video', 'CMPC_video.build_A2D_batches')


def pipeline_modules():
    """Dotted names of every Python module outside tests/ except the scripts themselves."""
    names = []
    for path in sorted(glob.glob(os.path.join(ROOT, '**', '*.py'), recursive=True)):
        rel = os.path.relpath(path, ROOT)
        if rel.split(os.sep)[0] in ('tests', '.venv') or rel.startswith('.'):
            continue
        name = rel[:-len('.py')].replace(os.sep, '.')
        if name.endswith('__init__'):
            name = name[:-len('.__init__')]
        if name not in SCRIPTS:
            names.append(name)
    return names


def imported_names(path):
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_no_source_outside_tests_imports_a_script():
    offenders = []
    for name in pipeline_modules() + list(SCRIPTS):
        path = os.path.join(ROOT, name.replace('.', os.sep))
        path = path + '.py' if os.path.isfile(path + '.py') else os.path.join(path, '__init__.py')
        offenders += ['%s imports %s' % (name, m) for m in imported_names(path) if m in SCRIPTS]
    assert not offenders


def test_importing_the_pipeline_does_not_import_a_script():
    modules = [m for m in pipeline_modules()]
    assert 'CMPC_model' in modules and 'util.pipeline.evaluate' in modules
    code = ('import importlib, sys\n'
            'for m in %r:\n'
            '    importlib.import_module(m)\n'
            'print(sorted(s for s in %r if s in sys.modules))' % (modules, SCRIPTS))
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == '[]'


TRAINING_MODULES = ('util.pipeline.trainer', 'util.pipeline.optim', 'util.pipeline.loss')


def test_the_models_do_not_import_training():
    # The model module knows nothing about optimizers (STYLE.md lesson 14): predict, export and
    # the demo run a forward without loading the loss or the optimizer, even transitively.
    code = ('import sys\n'
            'import CMPC_model, CMPC_video.CMPC_video_mm_tgraph_allvec\n'
            'print(sorted(m for m in %r if m in sys.modules))\n'
            'import util.pipeline.trainer\n'
            'print(sorted(m for m in %r if m in sys.modules))'
            % (TRAINING_MODULES, TRAINING_MODULES))
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))
    assert out.returncode == 0, out.stderr[-3000:]
    models, trainer = out.stdout.strip().splitlines()[-2:]
    assert models == '[]'
    # The check sees those modules when they are loaded.
    assert trainer == str(sorted(TRAINING_MODULES))
