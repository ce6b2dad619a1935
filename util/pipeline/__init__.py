"""The TensorFlow pipeline of the port: the flags, the model modules named by -n, settings and
snapshots, checkpoints, the input/output contract, the loss, the optimizer and the train step,
tf.data, tf.distribute, evaluation, logs, and the train and test loops that the command lines
run."""
