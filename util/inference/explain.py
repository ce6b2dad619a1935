"""How CMPC read a sentence: the paper's Figure 1 for your own image and sentence.

One figure per prediction (util/inference/predict.py writes it as explain.png):
  top row     the image; the score maps of the three levels (sigmoid of up_c3 / up_c4 / up_c5,
              resized-and-cropped back to the image as the final map is); the final mask;
  bottom row  each word's soft type from the word parser, entity / attribute / relation /
              unnecessary (the video model: entity / attribute / static relation / action /
              unnecessary), as a stacked bar that sums to 1, with the probabilities written in.
Entity and attribute words drive entity perception (MUTAN fusion with the visual features),
relation words drive the graph of relation-aware reasoning; 'unnecessary' words are left out
of the sentence feature that guides the exchange between levels.

Drawn with matplotlib's object API on an Agg canvas (no pyplot, no display needed).
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from util.visualize import overlay

TYPE_COLOURS = {'entity': '#1f77b4', 'attribute': '#2ca02c', 'relation': '#d62728',
                'static relation': '#d62728', 'action': '#9467bd', 'unnecessary': '#bbbbbb'}
LEVEL_TITLES = {'c3': 'c3 (res3 features)', 'c4': 'c4 (res4 features)',
                'c5': 'c5 (res5 features)'}
DPI = 100


def explain_figure(path, image, sentence, words, level_probs, mask, prob=None):
    """Writes the figure as a PNG to `path`.

    image uint8 [h, w, 3]; words: util.inference.predict.word_records (word, unknown, types);
    level_probs {'c3': [h, w] probability, ...}; mask bool [h, w]; prob [h, w] (optional, for
    the final panel's title).
    """
    n_words = max(len(words), 1)
    fig = Figure(figsize=(16, 3.6 + 0.32 * n_words + 0.8), dpi=DPI)
    FigureCanvasAgg(fig)
    # Columns: image, c3, c4, c5, the maps' colour bar, room for its labels, final mask.
    grid = fig.add_gridspec(2, 7, height_ratios=[3.6, 0.32 * n_words + 0.8],
                            width_ratios=[1, 1, 1, 1, 0.05, 0.22, 1], hspace=0.35, wspace=0.12,
                            left=0.1, right=0.98, top=0.85, bottom=0.06)
    fig.suptitle('"%s"' % sentence, fontsize=13)

    # -- top row: image, levels, final mask
    panels = [fig.add_subplot(grid[0, k]) for k in (0, 1, 2, 3, 6)]
    panels[0].imshow(image)
    panels[0].set_title('image %dx%d' % (image.shape[1], image.shape[0]), fontsize=10)
    for ax, lv in zip(panels[1:4], ('c3', 'c4', 'c5')):
        shown = ax.imshow(level_probs[lv], vmin=0, vmax=1, cmap='magma')
        ax.set_title('%s\np>0.5 on %.0f%% of the image\nmax p %.2f'
                     % (LEVEL_TITLES[lv], 100 * np.mean(level_probs[lv] >= 0.5),
                        level_probs[lv].max()), fontsize=10)
    fig.colorbar(shown, cax=fig.add_subplot(grid[0, 4]), label='level probability')
    panels[4].imshow(overlay(image, mask))
    title = 'final mask: %.1f%% of the image' % (100 * mask.mean())
    if prob is not None and mask.any():
        title += '\nmean p inside %.2f' % prob[mask].mean()
    panels[4].set_title(title, fontsize=10)
    for ax in panels:
        ax.set_xticks([])
        ax.set_yticks([])

    # -- bottom row: word types
    ax = fig.add_subplot(grid[1, :])
    labels = [w['word'].strip() or repr(w['word']) for w in words]
    labels = [lab + ('  <unk>' if w['unknown'] else '') for lab, w in zip(labels, words)]
    y = np.arange(len(words))
    left = np.zeros(len(words))
    types = list(words[0]['types']) if words else []  # the model's WORD_TYPES, in order
    for t in types:
        colour = TYPE_COLOURS.get(t, '#17becf')
        p = np.array([w['types'][t] for w in words])
        ax.barh(y, p, left=left, color=colour, edgecolor='white', height=0.75, label=t)
        for yi, (l, pi) in enumerate(zip(left, p)):
            if pi >= 0.08:
                ax.text(l + pi / 2, yi, '%.2f' % pi, ha='center', va='center', fontsize=8,
                        color='white' if t != 'unnecessary' else 'black')
        left += p
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=10)
    for tick, w in zip(ax.get_yticklabels(), words):
        if w['unknown']:
            tick.set_color('#888888')
    ax.invert_yaxis()  # first word on top
    ax.set_xlim(0, 1)
    ax.set_xlabel('word type probability (each row sums to 1)')
    ax.legend(ncol=max(len(types), 1), loc='lower center', bbox_to_anchor=(0.5, 1.0),
              frameon=False, fontsize=9)
    fig.savefig(path, format='png', dpi=DPI)
    return path


PREVIEW_FRAMES = 8  # frames in a video prediction's preview.png


def frames_figure(path, sentence, frames):
    """A video prediction at a glance (util/inference/predict_video.py's preview.png): frames,
    [(frame number, uint8 [h, w, 3] with the mask overlaid, mask area fraction)], in a row of up
    to 4 per line, each titled with its number and the mask's share of the frame."""
    cols = min(len(frames), 4)
    rows = -(-len(frames) // cols)
    h, w = frames[0][1].shape[:2]
    side = 3.2  # inches per panel's longer side
    fig = Figure(figsize=(cols * side * min(1, w / h) + 0.2,
                          rows * (side * min(1, h / w) + 0.45) + 0.5), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.suptitle('"%s"' % sentence, fontsize=12)
    for k, (number, shown, area) in enumerate(frames):
        ax = fig.add_subplot(rows, cols, k + 1)
        ax.imshow(shown)
        ax.set_title('frame %d: mask %.1f%%' % (number, 100 * area), fontsize=9)
        ax.axis('off')
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, format='png')
