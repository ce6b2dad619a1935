#!/usr/bin/env bash
# The main job: set up .venv, make the synthetic dataset, build its batches, train a small CMPC
# on the CPU, test it with and without DenseCRF, and print the table next to trivial baselines.
# Environment knobs: ITERS (training iterations), TRAIN_IMAGES (synthetic training scenes),
# OUT (checkpoints and results folder), SYN (synthetic dataset folder).
#
# `bash main_job.sh video`: the same for the video model on the synthetic A2D Sentences
# (shapes that move or change colour): decode its videos, build the batches, train and test the
# video CMPC and, the same way on the annotated frames alone, the image CMPC, and print both
# next to baselines, by query category (appearance / changes / motion). Knobs: ITERS,
# TRAIN_VIDEOS, TEST_VIDEOS, VIDEO_SIZE (frames and model input, px), RADIUS (the shapes' radius
# as a fraction of VIDEO_SIZE), LR, OUT, SYN. The defaults fit in about 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup_venv.sh
export TF_CPP_MIN_LOG_LEVEL=2
PY=.venv/bin/python

if [ "${1:-}" = "video" ]; then
  SYN=${SYN:-data/synthetic_video}
  OUT=${OUT:-ckpts/synthetic_video}
  ITERS=${ITERS:-500}
  TRAIN_VIDEOS=${TRAIN_VIDEOS:-80}
  TEST_VIDEOS=${TEST_VIDEOS:-30}
  VIDEO_SIZE=${VIDEO_SIZE:-64}
  RADIUS=${RADIUS:-0.14}
  LR=${LR:-0.003}
  start=$(date +%s)
  $PY -m tools.make_synthetic_dataset --video --out "$SYN" --train_videos "$TRAIN_VIDEOS" \
      --test_videos "$TEST_VIDEOS" --video_size "$VIDEO_SIZE" --radius "$RADIUS"
  $PY CMPC_video/build_A2D_batches.py --extract-frames --a2d-root "$SYN/A2D-Sentences" --no-progress
  $PY CMPC_video/build_A2D_batches.py --a2d-root "$SYN/A2D-Sentences" --vocab "$SYN/vocabulary.txt" \
      --out "$SYN" --size "$VIDEO_SIZE" --no-progress
  # The same schedule for both models; the image model reads each sample's annotated frame.
  TRAIN=(-m train -d a2d_sent_new -t train --data-root "$SYN" --vocab "$SYN/vocabulary.txt"
         --emb-file "$SYN/synthetic_emb.npy" -emb --preset synthetic --size "$VIDEO_SIZE"
         --random-backbone -lr "$LR" --lr-decay-step "$ITERS" -bs 4 -i "$ITERS" -s "$ITERS"
         --log-every 50 --seed 0)
  TEST=(-m test -d a2d_sent_new -t test --data-root "$SYN" -i "$ITERS")
  $PY CMPC_video/trainval_video.py "${TRAIN[@]}" -f "$OUT/video"
  $PY CMPC_video/trainval_video.py "${TEST[@]}" -f "$OUT/video" -v --vis-dir "$OUT/video/visualization"
  $PY trainval_model.py "${TRAIN[@]}" -f "$OUT/image"
  $PY trainval_model.py "${TEST[@]}" -f "$OUT/image"
  $PY -m tools.synthetic_baselines --video "$SYN" --out "$OUT/table.json" \
      --results "$OUT/video/a2d_sent_new_test_iter_${ITERS}_results.json" \
      --results "$OUT/image/a2d_sent_new_test_iter_${ITERS}_results.json"
  echo
  echo "Results: $OUT/{video,image}/a2d_sent_new_test_iter_${ITERS}_results.json, table: $OUT/table.json"
  echo "Video main job took $(( $(date +%s) - start )) s (after setup)."
  exit 0
fi
SYN=${SYN:-data/synthetic}
OUT=${OUT:-ckpts/synthetic}
ITERS=${ITERS:-4000}
TRAIN_IMAGES=${TRAIN_IMAGES:-400}
SIZE=96  # the synthetic preset's input size (util/pipeline/settings.py)
start=$(date +%s)

$PY -m tools.make_synthetic_dataset --out "$SYN" --train_images "$TRAIN_IMAGES"
$PY build_batches.py -d unc -t train --synthetic "$SYN" --input_size $SIZE --no_progress
$PY build_batches.py -d unc -t val --synthetic "$SYN" --no_progress

$PY trainval_model.py -m train -d unc -t train -f "$OUT" --data-root "$SYN" \
    --vocab "$SYN/vocabulary_synthetic.txt" --emb-file "$SYN/synthetic_emb.npy" -emb \
    --preset synthetic --random-backbone \
    -lr 0.003 --lr-decay-step "$ITERS" -bs 4 -i "$ITERS" -s 1000 --log-every 50 --seed 0 \
    --val-split val --val-every 500 --val-max 48
$PY -m tools.plot_training "$OUT" --title "CMPC on the synthetic dataset (main_job.sh)"
$PY trainval_model.py -m test -d unc -t val -f "$OUT" --data-root "$SYN" -i "$ITERS" -c -v \
    --vis-dir "$OUT/visualization"
$PY -m tools.synthetic_baselines --synthetic "$SYN" -t val \
    --results "$OUT/unc_val_iter_${ITERS}_results.json" --out "$OUT/table.json"

echo
echo "Visualizations (image, ground truth, prediction, DenseCRF prediction per expression): $OUT/visualization/"
echo "Results: $OUT/unc_val_iter_${ITERS}_results.json, table: $OUT/table.json"
echo "Training curve: $OUT/training.png; TensorBoard: tensorboard --logdir $OUT/tensorboard"
echo "Main job took $(( $(date +%s) - start )) s (after setup)."
