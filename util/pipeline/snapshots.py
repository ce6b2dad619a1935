"""Where snapshots are and what they hold, without TensorFlow: naming, listing and pruning the
snapshots of a training run, resolving what the user named as a checkpoint, and reading the
settings saved beside it (`{prefix}.json`, see util/pipeline/settings.py).

A snapshot is a TF1 V2 checkpoint `{folder}/{dataset}_iter_{N}.tfmodel` (`.index` and
`.data-*`; util/pipeline/checkpoint.py writes and reads it) with its `.json`. Its `.index` is renamed
into place last, so a snapshot whose `.index` exists is complete.
"""

import glob
import json
import os
import re

from util.cli import InputError

KEEP_SNAPSHOTS = 4


def snapshot_prefix(folder, dataset, n_iter):
    """{folder}/{dataset}_iter_{n_iter}.tfmodel, or {dataset}_best.tfmodel for n_iter 'best'
    (the snapshot that did best on validation)."""
    if n_iter == 'best':
        return os.path.join(folder, '%s_best.tfmodel' % dataset)
    return os.path.join(folder, '%s_iter_%d.tfmodel' % (dataset, n_iter))


def checkpoint_exists(prefix):
    return os.path.isfile(prefix + '.index')


def checkpoint_files(prefix):
    """The files that make up the checkpoint `prefix` (only those that exist)."""
    folder = os.path.dirname(prefix) or '.'
    base = os.path.basename(prefix)
    if not os.path.isdir(folder):
        return []
    names = [n for n in os.listdir(folder)
             if n == base + '.index' or n.startswith(base + '.data-')
             or n == base + '.meta' or n == base + '.json']
    return sorted(os.path.join(folder, n) for n in names)


def list_snapshots(folder, dataset):
    """[(iteration, prefix)] of complete snapshots in `folder`, oldest first."""
    pattern = re.compile(re.escape(dataset) + r'_iter_(\d+)\.tfmodel\.index$')
    found = []
    for path in glob.glob(os.path.join(glob.escape(folder), '*.index')):
        m = pattern.match(os.path.basename(path))
        if m:
            found.append((int(m.group(1)), path[:-len('.index')]))
    return sorted(found)


def remove_snapshot(prefix):
    """Deletes a snapshot's files, its .index first: interrupted, it leaves no snapshot that
    looks complete."""
    files = checkpoint_files(prefix)
    for path in sorted(files, key=lambda p: not p.endswith('.index')):
        os.remove(path)


def remove_old_snapshots(folder, dataset, keep=KEEP_SNAPSHOTS):
    for _, prefix in list_snapshots(folder, dataset)[:-keep]:
        remove_snapshot(prefix)


def remove_partial_snapshots(folder, dataset):
    """Deletes what an interrupted snapshot write left in `folder`: temporary bundles
    (`*.tfmodel.tmp-*`) and the data or .json of a snapshot whose .index never came.
    Returns the paths removed."""
    removed = []
    pattern = re.compile(re.escape(dataset) + r'_(iter_\d+|best)\.tfmodel(\.tmp-[0-9a-f]+)?'
                         r'(\.index|\.json|\.data-\d+-of-\d+)$')
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        m = pattern.match(name)
        if not m:
            continue
        prefix = os.path.join(folder, name[:-len(m.group(3))])
        if m.group(2) or not checkpoint_exists(prefix):
            os.remove(os.path.join(folder, name))
            removed.append(os.path.join(folder, name))
    return removed


def resolve_checkpoint(path, flag='--checkpoint'):
    """A checkpoint prefix from a prefix, one of its files, or a folder (newest snapshot);
    InputError naming `flag` when there is none."""
    if os.path.isdir(path):
        found = []
        for index in glob.glob(os.path.join(glob.escape(path), '*.index')):
            m = re.search(r'_iter_(\d+)\.tfmodel\.index$', index)
            found.append((int(m.group(1)) if m else -1, os.path.getmtime(index), index))
        if not found:
            raise InputError('%s %s: folder holds no checkpoint (*.index)' % (flag, path))
        return max(found)[2][:-len('.index')]
    for suffix in ('.index', '.json', '.meta'):
        if path.endswith(suffix) and os.path.isfile(path[:-len(suffix)] + '.index'):
            return path[:-len(suffix)]
    m = re.match(r'(.*)\.data-\d+-of-\d+$', path)
    if m and os.path.isfile(m.group(1) + '.index'):
        return m.group(1)
    if not checkpoint_exists(path):
        raise InputError('%s %s: no checkpoint (expected the file %s.index)'
                         % (flag, path, path))
    return path


def read_checkpoint_meta(prefix):
    """The settings saved beside a checkpoint ({prefix}.json), or None for a checkpoint of the
    original code; InputError when the file is not valid JSON."""
    path = prefix + '.json'
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except ValueError as e:
        raise InputError('%s: not valid JSON (%s)' % (path, e)) from None
