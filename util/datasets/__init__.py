"""The datasets: one module per release that knows its files and yields samples, and one module
(batches) that owns the format they are written in and the writer that writes it.

  batches.py   the sample and batch format (keys, dtypes, shapes: IMAGE_KEYS, VIDEO_KEYS, SPECS),
               the clip geometry (CLIP_FRAMES, ANNOTATED_FRAME, clip_window), the one writer
               (SplitWriter: atomic, resumable, a settings manifest; build_image_split,
               write_clip) and train_input, a stored sample as the network trains on it (the
               runner, tf_input, the backbone calibration and the benchmark all call it)
  refcoco.py   unc, unc+, Gref, Gref_umd (refer release + COCO train2014) -> ImageEntry
  referit.py   referit (query json + images/ + mask/*.mat)                 -> ImageEntry
  a2d.py       A2D Sentences (query csv, .h5 masks, frames; extract_frames) -> ClipEntry
  jhmdb.py     J-HMDB Sentences (query csv, puppet masks, seeded frames)    -> ClipEntry
  ref_youtube_vos.py  Ref-YouTube-VOS (meta_expressions, palette PNGs), and Ref-DAVIS17 in its
               converted layout (davis_*: each expression's annotator)  -> ClipEntry, VideoQuery
  mevis.py     MeViS (meta_expressions, mask_dict.json of RLE masks)     -> ClipEntry, VideoQuery
The synthetic datasets have no module of their own: tools/synthetic.py writes the RefCOCO and
ReferIt layouts and tools/synthetic_video.py the A2D layout, read by the modules above.
The command lines are build_batches.py (images) and CMPC_video/build_A2D_batches.py (video).

A new dataset is one module that yields samples. For images:

    # util/datasets/mydata.py
    import functools
    from util.datasets.batches import ImageEntry, read_image

    def load(image, mask_path, what):      # -> (im uint8 [h, w(, 3)], mask [h, w])
        return read_image(image, what), my_mask_reader(mask_path)

    def entries(split, root):              # one ImageEntry per image and object
        return [ImageEntry(sents=[...], what='%s entry %s' % (index_file, key),
                           load=functools.partial(load, image_path, mask_path, what)) ...]

and its batches are written by the one writer:

    from util.datasets import batches
    batches.build_image_split(out, 'mydata', split, mydata.entries(split, root), vocab_file)

which gives {out}/mydata/{split}_batch/mydata_{split}_{n}.npz; `trainval_model.py -d mydata -t
SPLIT --data-root out` trains and tests on it (any name works once its folder exists).
tests/test_datasets.py runs this recipe end to end. A video dataset yields (split, ClipEntry)
and writes each with batches.write_clip (see a2d.py and CMPC_video/build_A2D_batches.py). A
dataset scored on whole videos also gives one ref_youtube_vos.VideoQuery per expression (the
frames in order, each frame's ground truth or None).
"""
