"""The command-line scripts are leaves: no module imports a script, neither in its source nor by
importing something that does, and no script imports another script.

A script is any Python file outside tests/ with a top-level `if __name__ == '__main__':` (the
list is derived from the tree, so a new script is covered without editing this file).

The models import nothing of training (the trainer, the optimizer, the loss).
"""

import ast
import glob
import os
import subprocess
import sys

import pytest

from helpers import ROOT


def python_files(root):
    """{dotted module name: path} of every Python file under root outside tests/ and hidden or
    virtualenv folders."""
    files = {}
    for path in sorted(glob.glob(os.path.join(root, '**', '*.py'), recursive=True)):
        rel = os.path.relpath(path, root)
        parts = rel.split(os.sep)
        if parts[0] in ('tests', '.venv') or any(p.startswith('.') for p in parts):
            continue
        name = rel[:-len('.py')].replace(os.sep, '.')
        if name.endswith('__init__'):
            name = name[:-len('.__init__')]
        files[name] = path
    return files


def is_script(path):
    """Whether the file has a top-level `if __name__ == '__main__':`."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    for node in tree.body:
        if (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
                and isinstance(node.test.left, ast.Name) and node.test.left.id == '__name__'
                and any(isinstance(c, ast.Constant) and c.value == '__main__'
                        for c in node.test.comparators)):
            return True
    return False


def scripts(root):
    return sorted(name for name, path in python_files(root).items() if is_script(path))


def imported_names(path, name):
    """Every module name an import statement of the file may load: `import a.b` -> a.b;
    `from a import b` -> a and a.b; a bare name is also tried beside the file (scripts put
    their folder on sys.path)."""
    tree = ast.parse(open(path, encoding='utf-8').read(), path)
    package = name.rpartition('.')[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from the file's package
                up = package.split('.')[:len(package.split('.')) - node.level + 1]
                base = '.'.join([p for p in up if p] + ([base] if base else []))
            mods = [base] + ['%s.%s' % (base, a.name) if base else a.name for a in node.names]
        else:
            continue
        for m in mods:
            yield m
            if package:
                yield '%s.%s' % (package, m)


def script_imports(root):
    """'A imports S' for every file A of the tree whose source imports a script S."""
    files, leaves = python_files(root), set(scripts(root))
    return sorted('%s imports %s' % (name, m) for name, path in files.items()
                  for m in set(imported_names(path, name)) if m in leaves and m != name)


def loaded_scripts(root):
    """The scripts that end up in sys.modules when every other module of the tree is imported
    (catches imports made at run time, e.g. through importlib)."""
    leaves = scripts(root)
    modules = [m for m in python_files(root) if m not in leaves]
    code = ('import importlib, sys\n'
            'for m in %r:\n'
            '    importlib.import_module(m)\n'
            'print(sorted(s for s in %r if s in sys.modules))' % (modules, leaves))
    out = subprocess.run([sys.executable, '-c', code], cwd=root, capture_output=True, text=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=root))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_every_script_is_found():
    found = scripts(ROOT)
    for name in ('trainval_model', 'build_batches', 'demo', 'CMPC_video.trainval_video',
                 'CMPC_video.build_A2D_batches', 'tools.benchmark', 'tools.make_synthetic_dataset'):
        assert name in found
    assert 'util.datasets.batches' not in found and 'tools.synthetic' not in found


def test_no_module_or_script_imports_a_script():
    assert script_imports(ROOT) == []


@pytest.mark.slow  # imports every module of the tree in a fresh process: 40-55 s; in CI
def test_importing_the_pipeline_does_not_import_a_script():
    modules = [m for m in python_files(ROOT) if m not in scripts(ROOT)]
    assert 'CMPC_model' in modules and 'util.pipeline.evaluate' in modules
    assert loaded_scripts(ROOT) == '[]'


def _write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def test_the_checker_reports_a_planted_script_import(tmp_path):
    # A small tree: a pipeline module and two scripts, one of which imports the other.
    main = "\nif __name__ == '__main__':\n    print('run')\n"
    root = str(tmp_path)
    _write(root, 'pkg/__init__.py', '')
    _write(root, 'pkg/helper.py', 'X = 1\n')
    _write(root, 'build_thing.py', 'from pkg import helper\n' + main)
    _write(root, 'tools/__init__.py', '')
    _write(root, 'tools/other.py', 'from pkg.helper import X\n' + main)
    assert scripts(root) == ['build_thing', 'tools.other']
    assert script_imports(root) == [] and loaded_scripts(root) == '[]'

    # script -> script, inside a function (as tools/benchmark.py once imported build_batches)
    _write(root, 'tools/other.py', 'def bench():\n    import build_thing\n' + main)
    assert script_imports(root) == ['tools.other imports build_thing']
    _write(root, 'tools/other.py', 'Y = 2\n' + main)
    _write(root, 'pkg/helper.py', 'from tools import other\nX = 1\n')  # module -> script
    assert script_imports(root) == ['pkg.helper imports tools.other']
    assert loaded_scripts(root) == "['tools.other']"
    # at run time only: the static check cannot see it, the import check does
    _write(root, 'pkg/helper.py', "import importlib\nimportlib.import_module('build_thing')\n")
    assert script_imports(root) == []
    assert loaded_scripts(root) == "['build_thing']"


TRAINING_MODULES = ('util.pipeline.trainer', 'util.pipeline.optim', 'util.pipeline.loss')


def test_the_models_do_not_import_training():
    # The model module knows nothing about optimizers (STYLE.md lesson 14): predict, export and
    # the demo run a forward without loading the loss or the optimizer, even transitively.
    # Nor do they edit sys.path (the scripts put the repository root on it).
    code = ('import sys\n'
            'path = list(sys.path)\n'
            'import CMPC_model, CMPC_video.CMPC_video_mm_tgraph_allvec\n'
            'assert sys.path == path, sys.path\n'
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
