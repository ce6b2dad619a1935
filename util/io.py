"""File helpers: the original's loaders (ReferIt masks, json, string lists) and atomic writes.

Every writer here goes through `atomic_open`: the bytes go to a hidden temporary file in
the destination folder, which is renamed over the final name only once complete, so an
interrupted run never leaves a truncated file under a final name. Temporary names start
with '.' and end with TMP_SUFFIX, so neither the original data reader (which looks for
`{prefix}_{n}.npz`) nor a glob of '*.npz' can pick one up, and `remove_stale_temps`
can clean them after a crash.
"""

import contextlib
import hashlib
import io
import json
import os
import pickle
import tempfile

import numpy as np
import scipy.io as sio

TMP_SUFFIX = '.tmp'


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; final files get the usual 0666 & ~umask instead.
_FILE_MODE = 0o666 & ~_current_umask()


# --------------------------------------------------------------------------- atomic writes

def temp_prefix(path):
    """Prefix of the temporary names used while writing path (same folder, hidden)."""
    return '.' + os.path.basename(path) + '.'


@contextlib.contextmanager
def atomic_open(path, mode='wb', fsync=True, encoding=None):
    """Open a temporary file beside path; on a clean exit rename it to path.

    On an exception the temporary file is removed and path is left untouched. fsync=True
    also survives a power cut; callers writing many small regenerable files may skip it,
    since the rename alone already protects against a killed process.
    """
    if mode not in ('w', 'wb'):
        raise ValueError('atomic_open: mode must be "w" or "wb", got %r' % (mode,))
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=temp_prefix(path), suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, mode, encoding=encoding if mode == 'w' else None) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def remove_stale_temps(folder, name_prefix=''):
    """Remove temporaries left in folder by a killed writer; returns how many.

    Only names made by atomic_open for final names starting with name_prefix are touched.
    """
    if not os.path.isdir(folder):
        return 0
    start = '.' + name_prefix
    removed = 0
    for name in os.listdir(folder):
        if name.startswith(start) and name.endswith(TMP_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
                removed += 1
    return removed


def save_npz_atomic(path, compressed=True, fsync=False, **arrays):
    """np.savez(_compressed) to path through a temporary file; path must end in .npz.

    fsync defaults to False: batches are many, small and can be rebuilt, and the rename
    already guarantees that a killed build leaves no truncated .npz.
    """
    if not path.endswith('.npz'):
        # np.savez would silently append '.npz' to a name without it.
        raise ValueError('save_npz_atomic: %s must end with .npz' % path)
    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path, 'wb', fsync=fsync) as f:
        save(f, **arrays)


def file_sha1(path):
    with open(path, 'rb') as f:
        return hashlib.sha1(f.read()).hexdigest()


def save_npy_atomic(path, array):
    with atomic_open(path, 'wb') as f:
        np.save(f, array)
    return path


def save_mat_atomic(path, mdict, description=None):
    """scipy.io.savemat (MATLAB 5 format) through a temporary file.

    description replaces the 116-byte text header, which otherwise holds the creation
    time; a fixed one makes the file a function of its content (reproducible datasets).
    """
    buf = io.BytesIO()
    sio.savemat(buf, mdict)
    data = buf.getvalue()
    if description is not None:
        text = description.encode('ascii')[:116].ljust(116, b' ')
        data = text + data[116:]
    with atomic_open(path, 'wb') as f:
        f.write(data)


def save_pickle_atomic(obj, path, protocol=2):
    """Pickle with protocol 2 by default: the refer files were written by Python 2."""
    with atomic_open(path, 'wb') as f:
        pickle.dump(obj, f, protocol=protocol)


# --------------------------------------------------------------------------- original loaders

def save_str_list(str_list, filename):
    with atomic_open(filename, 'w', encoding='utf-8') as f:
        f.writelines(s + '\n' for s in str_list)


def load_json(filename):
    with open(filename, 'r', encoding='utf-8') as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError('%s: not valid JSON (%s)' % (filename, e)) from None


def write_json(path, obj, indent=1, **dump_kwargs):
    """json.dump(obj) to `path` through a temporary file (a reader never sees half of it),
    making its folder; dump_kwargs go to json.dump (e.g. separators, sort_keys)."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    with atomic_open(path, 'w', fsync=False, encoding='utf-8') as f:
        json.dump(obj, f, indent=indent, **dump_kwargs)
    return path


def load_referit_gt_mask(mask_path):
    """Bool [H, W] ReferIt mask: the object is where the .mat's segimg_t equals 0."""
    try:
        mat = sio.loadmat(mask_path)
    except FileNotFoundError:
        raise FileNotFoundError('%s: ReferIt mask not found' % mask_path) from None
    if 'segimg_t' not in mat:
        raise ValueError('%s: expected a .mat with a "segimg_t" array (object = 0), found '
                         'keys %s' % (mask_path, sorted(k for k in mat if not k.startswith('__'))))
    mask = (mat['segimg_t'] == 0)
    return mask


def load_a2d_masks(path):
    """(instance ids int64 [n], masks [n, h, w]) of one A2D Sentences annotation .h5: keys
    `instance` and `reMask`, the masks stored transposed ([w, h] for one instance, [n, w, h]
    for several)."""
    import h5py  # only the A2D tools read .h5 files
    try:
        with h5py.File(path, 'r') as f:
            missing = [k for k in ('instance', 'reMask') if k not in f]
            if missing:
                raise ValueError('%s: no %s in this annotation .h5 (has %s); expected '
                                 'instance and reMask' % (path, ' and '.join(missing),
                                                          ', '.join(sorted(f)) or 'nothing'))
            ids = np.asarray(f['instance'][:]).ravel().astype(np.int64)
            masks = np.asarray(f['reMask'][:])
    except OSError as e:  # h5py: truncated, or not HDF5 at all
        raise ValueError('%s: not a readable annotation .h5, truncated or another kind of '
                         'file (%s)' % (path, str(e).splitlines()[0])) from None
    if masks.ndim not in (2, 3) or masks.size == 0 or masks.size % max(len(ids), 1):
        raise ValueError('%s: reMask is %s for %d instances; expected [w, h] or [n, w, h]'
                         % (path, list(masks.shape), len(ids)))
    masks = masks.reshape((len(ids),) + masks.shape[-2:])  # [n, w, h]
    return ids, masks.transpose(0, 2, 1)


def video_frames(path):
    """The frames of a video file as RGB uint8 [h, w, 3] arrays, in order, decoded with PyAV
    (FFmpeg). ValueError naming the file if it cannot be decoded or has no video frame."""
    import av
    n = 0
    try:
        with av.open(path) as container:
            for n, frame in enumerate(container.decode(video=0), 1):
                yield frame.to_ndarray(format='rgb24')
    except (av.error.FFmpegError, IndexError) as e:  # IndexError: no video stream
        raise ValueError('%s: cannot be decoded as a video (%s)' % (path, e)) from None
    if n == 0:
        raise ValueError('%s: no video frames' % path)


class VideoWriter:
    """An H.264 .mp4 written frame by frame with PyAV (libx264, yuv420p), atomically: the file
    appears under its final name only when closed without an error.

        with VideoWriter('overlay.mp4', fps=24) as out:
            out.write(rgb)  # uint8 [h, w, 3], every frame of one size

    H.264 in yuv420p needs even sides: an odd side gets one more row or column, a copy of
    its last (so a 321 x 241 video is written 322 x 242)."""

    def __init__(self, path, fps):
        self.path, self.fps = path, fps
        self._file = self._container = self._stream = None

    def __enter__(self):
        import av
        self._atomic = atomic_open(self.path, 'wb', fsync=False)
        self._file = self._atomic.__enter__()
        self._container = av.open(self._file, 'w', format='mp4')
        return self

    def write(self, rgb):
        import av
        h, w = rgb.shape[:2]
        rgb = np.pad(rgb, [(0, h % 2), (0, w % 2), (0, 0)], mode='edge')
        if self._stream is None:
            self._stream = self._container.add_stream('libx264', rate=self.fps)
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = 'yuv420p'
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format='rgb24')
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def __exit__(self, *exc):
        try:
            if exc[0] is None and self._stream is not None:
                for packet in self._stream.encode():  # flush the encoder
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._atomic.__exit__(*exc)
        return False
