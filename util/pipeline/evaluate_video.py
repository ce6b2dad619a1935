"""Test mode over whole videos: Ref-YouTube-VOS, Ref-DAVIS17 and MeViS.

    python CMPC_video/trainval_video.py -m test -d mevis -t valid_u --release-root data/MeViS \
        -f ckpts/mevis -i 100000 [-c] [--max-videos N]

Every frame of every video of the split is segmented for every expression of that video, by
whole-video prediction's code path (util/inference/predict_video.predict_frames: each frame f
through the 16-frame window around it, the backbone once per frame, the video's expressions
decoded together). Where the split has masks, each expression is scored on the frames that have
a ground truth (util/video_metrics: J, F, J&F per frame, their means per expression, then over
the expressions; Ref-DAVIS17 one annotator at a time, then averaged), and the original's IoU
figures over every (expression, annotated frame) pair (util/eval_tools.SegEvaluator). With -c
both the plain and the DenseCRF masks are scored, and the DenseCRF masks are submitted.

Written (the names of test mode's results, {run} = {folder}/{dataset}_{split}_iter_{iters}):
  {run}_results.json      the split's J, F, J&F and IoU figures, per video and expression
  {run}_submission.zip    the masks in the evaluation server's layout, 0 / 255 PNGs at the
                          frame's size, one per listed frame: Ref-YouTube-VOS
                          Annotations/<video>/<exp_id>/<frame>.png, MeViS
                          <video>/<exp_id>/<frame>.png (Ref-DAVIS17 has no server: scored here)
  {run}_videos/<video>/   one folder per video done, written under a temporary name and renamed
                          when complete: scores.json and masks/<exp_id>/<frame>.png. A job
                          started again skips the videos found there.
"""

import os
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from util.cli import InputError
from util.datasets import mevis, ref_youtube_vos
from util.eval_tools import EVAL_IOU_THRESHOLDS, SegEvaluator, compute_mask_IU
from util.io import atomic_open, load_json, remove_stale_temps, write_json
from util.pipeline.evaluate import DCRF, PLAIN
from util import video_metrics


@dataclass
class Release:
    """What whole-video test mode needs of a dataset: its queries and its server's layout
    (None: no server; the split is scored here only)."""
    queries: Callable  # (root, split, num_words, counts) -> [VideoQuery]
    submission: str = None  # the folder of an expression's masks, from video and exp_id


RELEASES = {
    ref_youtube_vos.NAME: Release(ref_youtube_vos.queries, 'Annotations/{video}/{exp_id}'),
    ref_youtube_vos.DAVIS_NAME: Release(ref_youtube_vos.davis_queries),
    mevis.NAME: Release(mevis.queries, '{video}/{exp_id}'),
}


def by_video(queries):
    """{video: [its queries]} in the file's order; the queries of a video share its frames."""
    videos = {}
    for q in queries:
        first = videos.setdefault(q.video, [q])[0]
        if q is not first:
            if q.frame_paths != first.frame_paths:
                raise ValueError('%s: its frames differ from those of expression %s of the same '
                                 'video' % (q.what, first.exp_id))
            videos[q.video].append(q)
    return videos


def kinds(dcrf):
    """The post-processings scored: predict's result key and evaluate's name."""
    return [('mask', PLAIN)] + ([('mask_dcrf', DCRF)] if dcrf else [])


def test_video(model, queries, ids, dcrf, folder, progress=False):
    """Segments every frame of one video for each of its queries (ids [S, T]), writes
    folder/masks/<exp_id>/<frame>.png (the DenseCRF masks with dcrf) and returns the scores:
    {exp_id: {name: {'J_per_frame', 'F_per_frame', 'I', 'U', 'frames'}}} over the frames with a
    ground truth."""
    from util.inference.predict import save_png
    from util.inference.predict_video import VideoSource, predict_frames
    from util.pipeline.once_per_picture import FrameFeatures
    first = queries[0]
    source = VideoSource(first.frame_paths, flag=first.what, names=first.frames)
    submitted = 'mask_dcrf' if dcrf else 'mask'
    scores = {q.exp_id: {name: {'J_per_frame': [], 'F_per_frame': [], 'I': [], 'U': [],
                                'frames': []} for _, name in kinds(dcrf)} for q in queries}
    for q in queries:
        os.makedirs(os.path.join(folder, 'masks', q.exp_id))
    targets = list(range(1, source.n + 1))
    for f, _, results in predict_frames(model, FrameFeatures(model), source, targets, ids,
                                        dcrf, progress):
        name = source.names[f - 1]
        for q, res in zip(queries, results):
            save_png(os.path.join(folder, 'masks', q.exp_id, name + '.png'),
                     res[submitted].astype(np.uint8) * 255)
            gt = q.mask(f - 1)  # of its frame's size: the dataset module checks it
            if gt is None:
                continue
            void = q.void(f - 1)
            for key, kind in kinds(dcrf):
                s = scores[q.exp_id][kind]
                s['J_per_frame'].append(video_metrics.jaccard(res[key], gt, void))
                s['F_per_frame'].append(video_metrics.boundary_f(res[key], gt, void))
                I, U = compute_mask_IU(res[key], gt)
                s['I'].append(int(I))
                s['U'].append(int(U))
                s['frames'].append(name)
    for q in queries:  # the frame their shared cache holds: the queries outlive the video
        q.forget()
    return scores


def summarize(per_video, queries, dcrf):
    """The split's figures from the videos' scores: per post-processing, J, F and J&F (as the
    dataset's evaluation averages them) and the original's IoU figures."""
    annotator = {(q.video, q.exp_id): q.annotator for q in queries}
    out = {}
    for _, kind in kinds(dcrf):
        scored = {}  # {annotator or None: {video: {exp_id: video scores}}}
        evaluator = SegEvaluator(EVAL_IOU_THRESHOLDS, report_map=True)
        for video, exps in per_video.items():
            for exp_id, by_kind in exps.items():
                s = by_kind[kind]
                if not s['frames']:
                    continue
                for I, U in zip(s['I'], s['U']):
                    evaluator.add(I, U)
                scored.setdefault(annotator[(video, exp_id)], {}).setdefault(video, {})[exp_id] \
                    = video_metrics.frame_means(s['J_per_frame'], s['F_per_frame'])
        if not scored:
            continue
        if list(scored) == [None]:
            jf = video_metrics.dataset_scores(scored[None])
        else:
            jf = video_metrics.ref_davis_scores({ref_youtube_vos.ANNOTATORS[a]: v
                                                 for a, v in scored.items()})
        out[kind.replace(' ', '_')] = {'J&F': jf, 'IoU': evaluator.to_dict()}
    return out


def write_submission(path, videos_dir, per_video, queries, layout):
    """The zip of every listed frame's mask in the server's layout (atomic)."""
    frames = {q.video: q.frames for q in queries}
    with atomic_open(path, 'wb') as f, zipfile.ZipFile(f, 'w', zipfile.ZIP_STORED) as z:
        for video, exps in per_video.items():
            for exp_id in exps:
                inside = layout.format(video=video, exp_id=exp_id)
                for name in frames[video]:
                    z.write(os.path.join(videos_dir, video, 'masks', exp_id, name + '.png'),
                            '%s/%s.png' % (inside, name))


def run_test_videos(args):
    """-m test of trainval_video.py on a whole-video dataset (-d in RELEASES)."""
    from collections import Counter
    from tqdm import tqdm
    from util.datasets.batches import encode
    from util.inference.predict import Predictor
    from util.pipeline.models import fast_paths_of
    from util.pipeline.snapshots import snapshot_prefix

    release = RELEASES[args.dataset]
    if not args.release_root:
        sys.exit('error: -d %s tests on whole videos: give --release-root, the folder of the '
                 'release (meta_expressions, JPEGImages, ...)' % args.dataset)
    trained_on = getattr(args, 'checkpoint_dataset', None) or args.dataset
    weights = snapshot_prefix(args.folder, trained_on, args.iters)
    try:
        predictor = Predictor(weights, args.vocab, args.num_steps, '-f/-i', kinds=('video',),
                              model_name=args.model_name, fast_paths=fast_paths_of(args))
        counts = Counter()
        queries = release.queries(args.release_root, args.split, predictor.num_steps, counts)
    except (InputError, ValueError, FileNotFoundError) as e:
        sys.exit('error: %s' % e)
    for what, n in sorted(counts.items()):
        print('%s: %d' % (what, n))
    videos = by_video(queries)
    if args.max_videos:
        videos = dict(list(videos.items())[:args.max_videos])
        queries = [q for qs in videos.values() for q in qs]
    if not videos:
        sys.exit('error: --release-root %s, split %s: no expressions to test'
                 % (args.release_root, args.split))

    run = os.path.join(args.folder, '%s_%s_iter_%s' % (args.dataset, args.split, args.iters))
    videos_dir = run + '_videos'
    predictor.load()
    os.makedirs(videos_dir, exist_ok=True)  # once the model loaded: a failed start writes nothing
    remove_stale_temps(videos_dir)
    start = time.time()
    per_video, done = {}, 0
    for video, qs in tqdm(videos.items(), desc='test', unit='video', dynamic_ncols=True):
        folder = os.path.join(videos_dir, video)
        scores_path = os.path.join(folder, 'scores.json')
        if not os.path.isfile(scores_path):
            tmp = os.path.join(videos_dir, '.%s.tmp-%d' % (video, os.getpid()))
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                ids = np.stack([encode(q.text, predictor.vocab_dict, predictor.num_steps)
                                for q in qs]).astype(np.int32)  # [S, T], as the batches'
                scores = test_video(predictor.model, qs, ids, args.dcrf, tmp)
                write_json(os.path.join(tmp, 'scores.json'), scores)
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            done += 1
        per_video[video] = load_json(scores_path)
    seconds = time.time() - start

    results = {'model': 'video', 'model_name': predictor.module.__name__,
               'dataset': args.dataset, 'split': args.split, 'iter': args.iters,
               'checkpoint': weights, 'release_root': args.release_root, 'dcrf': args.dcrf,
               **fast_paths_of(predictor.model),
               'videos': len(videos), 'expressions': len(queries), 'videos_run': done,
               'seconds': seconds, 'counts': dict(counts)}
    results.update(summarize(per_video, queries, args.dcrf))
    for kind, r in results.items():
        if isinstance(r, dict) and 'J&F' in r:
            jf = r['J&F']
            print('%s: J&F = %.4f, J = %.4f, F = %.4f; overall IoU = %.4f, mean IoU = %.4f'
                  % (kind, jf['J&F'], jf['J'], jf['F'], r['IoU']['overall_iou'],
                     r['IoU']['mean_iou']))
    if release.submission:
        path = run + '_submission.zip'
        write_submission(path, videos_dir, per_video, queries, release.submission)
        results['submission'] = path
        print('Submission (the server\'s layout): %s' % path)
    path = args.results or run + '_results.json'
    write_json(path, results)
    print('Results written to %s (%d videos, %d expressions, %.1f s)'
          % (path, len(videos), len(queries), seconds))
    return results
