"""Data-parallel training with tf.distribute: which strategy the flags and TF_CONFIG ask for.

    -g 0,1,2,3              one machine, MirroredStrategy over those GPUs
    TF_CONFIG={"cluster": {"worker": ["host1:port", "host2:port"]},
               "task": {"type": "worker", "index": 0}}
                            several machines, MultiWorkerMirroredStrategy (each over its -g GPUs,
                            or its CPU)
    --cpu-replicas N        one machine without GPUs: its CPU split into N logical devices,
                            MirroredStrategy over them (for tests and trying things out)

Anything else is the default strategy: one replica, the original's behaviour. The chief (the
`chief` task, or worker 0 when the cluster has no chief) writes snapshots and logs; every worker
reads its own share of each global batch (see DataReader's `shard`).
"""

import json
import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass
class Setup:
    """The strategy and this process's place in the cluster."""
    strategy: tf.distribute.Strategy
    num_workers: int = 1
    worker_index: int = 0
    is_chief: bool = True

    @property
    def num_replicas(self):
        return self.strategy.num_replicas_in_sync

    def describe(self):
        if self.num_replicas == 1:
            return 'one replica (%s)' % ('GPU' if tf.config.list_logical_devices('GPU') else 'CPU')
        devices = self.strategy.extended.worker_devices
        # tf.distribute.MultiWorkerMirroredStrategy's class is CollectiveAllReduceStrategy.
        name = ('MultiWorkerMirroredStrategy' if self.num_workers > 1
                else type(self.strategy).__name__)
        return ('%s: %d replicas, %d worker(s), this is worker %d%s, local devices %s'
                % (name, self.num_replicas, self.num_workers,
                   self.worker_index, ' (chief)' if self.is_chief else '', ', '.join(devices)))


def read_tf_config(environ=os.environ):
    """(number of workers, this worker's index in the cluster, is chief) from TF_CONFIG.

    Workers are numbered as tf.distribute numbers them: the chief first, then the workers."""
    text = environ.get('TF_CONFIG', '').strip()
    if not text:
        return 1, 0, True
    try:
        config = json.loads(text)
        cluster, task = config.get('cluster', {}), config['task']
        chiefs, workers = list(cluster.get('chief', [])), list(cluster.get('worker', []))
        task_type, task_index = task['type'], int(task['index'])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError('TF_CONFIG: expected JSON like {"cluster": {"worker": ["host:port", '
                         '...]}, "task": {"type": "worker", "index": 0}}, got %r (%s)'
                         % (text, e)) from e
    if len(chiefs) > 1:
        raise ValueError('TF_CONFIG: at most one chief, got %d' % len(chiefs))
    if task_type not in ('chief', 'worker'):
        raise ValueError("TF_CONFIG: task type must be 'chief' or 'worker' for training, got %r"
                         % (task_type,))
    members = chiefs if task_type == 'chief' else workers
    if not 0 <= task_index < len(members):
        raise ValueError('TF_CONFIG: task index %d, but the cluster has %d %s task(s)'
                         % (task_index, len(members), task_type))
    index = task_index + (len(chiefs) if task_type == 'worker' else 0)
    return len(chiefs) + len(workers), index, index == 0


def setup(gpus='0', cpu_replicas=1, environ=os.environ):
    """The strategy for `-g` (GPU ids, already in CUDA_VISIBLE_DEVICES), `--cpu-replicas` and
    TF_CONFIG. Call it before TensorFlow runs anything: both logical devices and the multi-worker
    runtime must be set up first."""
    num_workers, worker_index, is_chief = read_tf_config(environ)
    if cpu_replicas > 1:
        if num_workers > 1:
            raise ValueError('--cpu-replicas cannot be combined with a multi-worker TF_CONFIG '
                             '(each worker trains on its own GPUs, or its CPU)')
        cpu = tf.config.list_physical_devices('CPU')[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas)
        devices = ['/cpu:%d' % i for i in range(cpu_replicas)]
        strategy = tf.distribute.MirroredStrategy(devices)
    elif num_workers > 1:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif len([g for g in gpus.split(',') if g.strip()]) > 1:
        found = tf.config.list_physical_devices('GPU')
        if len(found) > 1:
            strategy = tf.distribute.MirroredStrategy()  # the GPUs CUDA_VISIBLE_DEVICES shows
        else:
            print('-g %s: %d GPU(s) visible, training on one replica' % (gpus, len(found)))
            strategy = tf.distribute.get_strategy()
    else:
        strategy = tf.distribute.get_strategy()
    return Setup(strategy, num_workers, worker_index, is_chief)


def all_workers_agree(setup, value):
    """True when every worker passes the same integer (e.g. the step it resumed from)."""
    if setup.num_workers == 1:
        return True
    strategy = setup.strategy
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant([value], tf.int64))
    gathered = strategy.gather(values, axis=0).numpy()  # [replicas]
    return bool(gathered.min() == gathered.max())


def split_to_replicas(strategy, *arrays):
    """This worker's arrays (its share of the global batch) split equally among its replicas,
    in order, as a distributed value of tuples."""
    local = len(strategy.extended.worker_devices)
    batch = arrays[0].shape[0]
    if batch % local:
        raise ValueError('a batch of %d samples cannot be split equally among the %d '
                         'replicas of this worker' % (batch, local))
    parts = [np.split(a, local) for a in arrays]

    def value_fn(ctx):
        # Replica ids are numbered worker by worker: this worker's are consecutive.
        k = ctx.replica_id_in_sync_group % local
        return tuple(tf.constant(p[k]) for p in parts)
    return strategy.experimental_distribute_values_from_function(value_fn)


def run_on_replicas(strategy, fn, args, gathered=()):
    """fn(*args) on every replica; returns the mean of each output over the replicas, except
    the keys in `gathered`, whose per-replica rows are concatenated (the whole global batch)."""
    out = strategy.run(fn, args=args)
    result = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
              for k, v in out.items() if k not in gathered}
    for k in gathered:
        result[k] = strategy.gather(out[k], axis=0)
    return result


def all_reduce_mean(grads):
    """The replicas' mean of `grads` in a replica context (the gradient of the global batch's
    cost, each replica's cost being the mean over its equal share); `grads` as they are
    outside tf.distribute."""
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        return replica.all_reduce(tf.distribute.ReduceOp.MEAN, grads)
    return grads
