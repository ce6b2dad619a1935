"""The demo page: drop an image, type sentences, see CMPC's masks and how it read each sentence.

Built with Gradio (demo.py starts it). The page runs predict mode's code (util/inference/predict.py's
Predictor: same image decoding, tokenisation, network and post-processing), so its masks are
predict mode's, pixel for pixel; the model is loaded once, when the server starts. With a
checkpoint of the video model the page takes a video and a frame number instead of an image:
the network sees the 16 frames around that frame (batches.clip_window) and the masks are of
that frame.

Per sentence the page shows:
  * the image with the mask in red, and the binary mask (0 / 255 PNG, with a download button);
    with DenseCRF switched on, the refined mask too;
  * the mask's area and bounding box, the words as the vocabulary saw them (unknown words
    flagged, words past the T-th listed as dropped);
  * with a checkpoint: the explain figure (util/inference/explain.py): the word types' bars and the
    c3 / c4 / c5 score maps, the paper's Figure 1 for this input. A SavedModel exports neither
    the level maps nor what DenseCRF needs, so with --saved-model the words' types are listed
    in a table instead.
A bad input (no image, a file that is not an image, a huge image, no sentence, a sentence
without words, too many sentences, a frame the video does not have) is reported in the page's message box, in words; the
server keeps serving.
"""

import io
import os
import traceback

import numpy as np
from PIL import Image

from util.cli import InputError
from util.datasets.batches import ANNOTATED_FRAME, clip_window
from util.inference.predict import LEVELS, load_image, mask_summary, sentence_words
from util.io import video_frames
from util.visualize import overlay

MAX_SENTENCES = 6
DEFAULT_MAX_PIXELS = 16_000_000
MAX_VIDEO_FRAMES = 600  # a clip of 20 s at 30 frames/s, held in memory
SKIMAGE_EXAMPLES = (  # photographs shipped with scikit-image, and sentences for them
    ('astronaut.png', 'the woman in the white suit\nthe flag on the left'),
    ('coffee.png', 'the cup of coffee\nthe spoon'),
)


# ---------------------------------------------------------------------------------------------
# Examples

def synthetic_examples(root, n_images=2, split='val'):
    """[image path, sentences] of the first n_images of the synthetic dataset's split that have
    two or more expressions (tools/make_synthetic_dataset.py's output in root); [] if there is none."""
    from util.refer import Refer
    try:
        refer = Refer(os.path.join(root, 'refer'), 'refcoco', 'unc')
    except (FileNotFoundError, ValueError):
        return []
    by_image = {}
    for ref in refer.refs_in_split(split):
        by_image.setdefault(ref['image_id'], []).append(ref['sentences'][0]['raw'])
    examples = []
    for image_id, sentences in by_image.items():
        path = os.path.join(root, 'coco', 'images', 'train2014',
                            refer.Imgs[image_id]['file_name'])
        if len(sentences) >= 2 and os.path.isfile(path):
            examples.append([path, '\n'.join(sentences[:2])])
        if len(examples) == n_images:
            break
    return examples


def synthetic_video_examples(root, n_videos=2):
    """[video path, sentences, frame] of the synthetic A2D Sentences' (tools/make_synthetic_dataset.py
    --video, in root) first n_videos test videos with twins (queries only the action words tell
    apart: 'changes' or 'motion'); [] if there is none."""
    import json
    try:
        with open(os.path.join(root, 'synthetic_video.json'), encoding='utf-8') as f:
            samples = json.load(f)['test_samples']
    except (OSError, ValueError, KeyError):
        return []
    by_clip = {}
    for sample in samples:
        if sample['category'] in ('changes', 'motion'):
            by_clip.setdefault((sample['video'], sample['frame']), []).append(sample['query'])
    examples, videos = [], set()
    for (video, frame), queries in by_clip.items():
        path = os.path.join(root, 'A2D-Sentences', 'Release', 'clips320H', video + '.mp4')
        if len(queries) >= 2 and os.path.isfile(path) and video not in videos:
            examples.append([path, '\n'.join(queries[:2]), frame])
            videos.add(video)
        if len(examples) == n_videos:
            break
    return examples


def skimage_examples():
    """[image path, sentences] for the real photographs that scikit-image ships."""
    import skimage.data
    out = []
    for name, sentences in SKIMAGE_EXAMPLES:
        path = os.path.join(skimage.data.data_dir, name)
        if os.path.isfile(path):
            out.append([path, sentences])
    return out


# ---------------------------------------------------------------------------------------------
# Inputs

def read_upload(path, max_pixels):
    """The uploaded image as predict mode reads it (util.inference.predict.load_image), after a size
    check that needs only the header."""
    if not path:
        raise InputError('no image: upload one or pick an example')
    name = os.path.basename(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # load_image says why, in its words
        pass
    else:
        if w * h > max_pixels:
            raise InputError('%s: %dx%d is %.1f megapixels; this server takes images of at most '
                             '%.1f megapixels (demo.py --max-pixels)'
                             % (name, w, h, w * h / 1e6, max_pixels / 1e6))
    return load_image(path, label=name)[0]


def read_video(path, frame, max_pixels, max_frames=MAX_VIDEO_FRAMES):
    """(clip: the 16 frames of batches.clip_window around `frame`, numbered from 1 (0 or
    None: the middle frame), its number, the video's frame count) of an uploaded video,
    decoded as build_A2D_batches.py --extract-frames decodes A2D's (util.io.video_frames)."""
    if not path:
        raise InputError('no video: upload one')
    name = os.path.basename(path)
    frames = []
    try:
        for image in video_frames(path):
            if image.shape[0] * image.shape[1] > max_pixels:
                raise InputError('%s: %dx%d frames are %.1f megapixels; this server takes at '
                                 'most %.1f (demo.py --max-pixels)'
                                 % (name, image.shape[1], image.shape[0],
                                    image.shape[0] * image.shape[1] / 1e6, max_pixels / 1e6))
            if len(frames) == max_frames:
                raise InputError('%s: longer than %d frames; cut the part to segment out'
                                 % (name, max_frames))
            frames.append(image)
    except ValueError as e:
        raise InputError(str(e).replace(path, name)) from None
    n = len(frames)
    frame = int(frame or 0) or (n + 1) // 2
    if not 1 <= frame <= n:
        raise InputError('frame %d: %s has frames 1 to %d' % (frame, name, n))
    return [frames[i - 1] for i in clip_window(frame, n)], frame, n


def read_sentences(text, max_sentences=MAX_SENTENCES):
    """The non-blank lines of the text box; InputError if there is none, too many, or a line
    without words."""
    sentences = [line.strip() for line in (text or '').splitlines() if line.strip()]
    if not sentences:
        raise InputError('no sentence: type one referring expression per line')
    if len(sentences) > max_sentences:
        raise InputError('%d sentences: this page shows at most %d at a time'
                         % (len(sentences), max_sentences))
    for k, sentence in enumerate(sentences):
        sentence_words(sentence, 'sentence %d (%r)' % (k + 1, sentence))
    return sentences


# ---------------------------------------------------------------------------------------------
# Outputs

def describe_result(k, sentence, res, num_steps):
    """Markdown: the sentence, the mask's area and box, the words with their types."""
    lines = ['### %d. "%s"' % (k + 1, sentence)]
    for key, title in (('mask', 'mask'), ('mask_dcrf', 'DenseCRF mask')):
        if res.get(key) is None:
            continue
        s = mask_summary(res[key])
        box = ('box x %d, y %d, %d x %d px' % tuple(s['bbox_xywh']) if s['bbox_xywh']
               else 'empty')
        lines.append('**%s**: %d px (%.1f%% of the image), %s' % (
            title, s['area'], 100 * s['area_fraction'], box))
    unknown = [w['word'] for w in res['words'] if w['unknown']]
    if res['all_unknown']:
        lines.append('**Every word is unknown to the vocabulary**: the model saw only <unk>.')
    elif unknown:
        lines.append('**Unknown words** (read as <unk>): ' + ', '.join('`%s`' % w for w in unknown))
    if res['dropped']:
        lines.append('**Dropped** (past the first %d words): %s'
                     % (num_steps, ' '.join(res['dropped'])))
    types = list(res['words'][0]['types'])  # the model's WORD_TYPES
    table = ['| word | type | ' + ' | '.join(types) + ' |', '|---|---|' + '---|' * len(types)]
    for w in res['words']:
        word = '`%s`%s' % (w['word'], ' (unknown)' if w['unknown'] else '')
        table.append('| %s | %s | %s |' % (word, w['type'], ' | '.join(
            '%.2f' % w['types'][t] for t in types)))
    return '\n\n'.join(lines + ['\n'.join(table)])  # a paragraph per line, then the table


def explain_image(image, sentence, res):
    """The explain figure as an RGB array."""
    from util.inference.explain import explain_figure
    buf = io.BytesIO()
    explain_figure(buf, image, sentence, res['words'],
                   {lv: res['levels'][lv]['prob'] for lv in LEVELS}, res['mask'],
                   prob=res['prob'])
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert('RGB'))


def as_png_mask(mask):
    return mask.astype(np.uint8) * 255


# ---------------------------------------------------------------------------------------------
# The page

class Demo:
    """The page's state: the predictor (loaded once) and its limits."""

    def __init__(self, predictor, max_pixels=DEFAULT_MAX_PIXELS, max_sentences=MAX_SENTENCES,
                 examples=()):
        self.predictor = predictor
        self.max_pixels = max_pixels
        self.max_sentences = max_sentences
        self.examples = [list(e) for e in examples]

    def read_input(self, upload, frame=None):
        """(the model's input, the image the masks are of, its description): an image, or for
        the video model the clip around the chosen frame and that frame."""
        if not self.predictor.video:
            image = read_upload(upload, self.max_pixels)
            what = 'a %dx%d image' % (image.shape[1], image.shape[0])
            return image, image, what
        clip, frame, n = read_video(upload, frame, self.max_pixels)
        image = clip[ANNOTATED_FRAME]
        return clip, image, 'frame %d of %d of a %dx%d video' % (frame, n, image.shape[1],
                                                                 image.shape[0])

    def segment(self, upload, text, dcrf, frame=None):
        """(message, [per sentence: markdown, overlay, mask, DenseCRF mask, explain]).
        frame: the video model's frame to segment (numbered from 1; 0: the middle one)."""
        try:
            model_input, image, what = self.read_input(upload, frame)
            self.predictor.check_image(image, os.path.basename(upload))
            sentences = read_sentences(text, self.max_sentences)
            if dcrf and not self.predictor.dcrf:
                raise InputError('DenseCRF is not available with a SavedModel; switch it off, '
                                 'or start the demo with --checkpoint')
            results = [self.predictor.predict(model_input, s, dcrf=bool(dcrf))
                       for s in sentences]
        except InputError as e:
            return 'error: %s' % e, []
        except Exception as e:  # a failure of this code or of TensorFlow: said in the page
            traceback.print_exc()  # the server's console has the details
            return ('error: the model failed on this input (%s: %s); the server log has the '
                    'traceback' % (type(e).__name__, e)), []
        slots = []
        for k, (sentence, res) in enumerate(zip(sentences, results)):
            slots.append({
                'markdown': describe_result(k, sentence, res, self.predictor.num_steps),
                'overlay': overlay(image, res['mask']),
                'mask': as_png_mask(res['mask']),
                'mask_dcrf': as_png_mask(res['mask_dcrf']) if dcrf else None,
                'explain': explain_image(image, sentence, res) if self.predictor.levels
                else None})
        return ('%d sentence%s on %s%s.' % (
            len(sentences), 's' if len(sentences) > 1 else '', what,
            ', with DenseCRF' if dcrf else '')), slots

    def build(self):
        """The gr.Blocks page."""
        import gradio as gr
        p = self.predictor
        video = p.video
        what = 'a video and the frame to segment' if video else 'an image'
        with gr.Blocks(title='CMPC referring segmentation', analytics_enabled=False) as page:
            gr.Markdown(
                '# CMPC: referring %s segmentation\n'
                'Cross-Modal Progressive Comprehension (Huang et al., CVPR 2020). Give %s and '
                'one expression per line; for each, the page shows the mask of what it refers '
                'to%s.%s\n\nModel: %s, input %dx%d, T = %d words.'
                % ('video' if video else 'image', what,
                   ', how the model typed each word (%s) and the score maps of the three feature '
                   'levels (c3, c4, c5)' % ', '.join(p.word_types()) if p.levels
                   else ' and how the model typed each word',
                   ' The video model sees the 16 frames around the chosen one (5 of them through '
                   'the backbone) and segments that frame.' if video else '',
                   p.describe(), p.settings.W, p.settings.H, p.num_steps))
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(
                        label=('Video (any format FFmpeg decodes, at most %d frames)'
                               % MAX_VIDEO_FRAMES if video else 'Image (any format PIL reads)')
                        + ', %.0f megapixels at most' % (self.max_pixels / 1e6),
                        type='filepath', elem_id='image-file')
                    frame = gr.Number(label='frame to segment (1 = the first; 0 = the middle '
                                      'one)', value=0, precision=0, minimum=0, visible=video,
                                      elem_id='frame')
                    preview = gr.Image(label='Image', interactive=False, elem_id='preview',
                                       format='png', height=260)
                with gr.Column(scale=1):
                    text = gr.Textbox(label='Sentences (one per line, at most %d)'
                                      % self.max_sentences, lines=4, elem_id='sentences',
                                      placeholder='the red circle left of the big star')
                    dcrf = gr.Checkbox(label='DenseCRF refinement' + (
                        '' if p.dcrf else ' (needs a checkpoint)'), value=False,
                        interactive=p.dcrf, elem_id='dcrf')
                    run = gr.Button('Segment', variant='primary', elem_id='segment')
                    message = gr.Markdown('', elem_id='message')
            if self.examples:
                gr.Examples(self.examples, inputs=[upload, text, frame][:len(self.examples[0])],
                            label='Examples')

            slots = []
            for k in range(self.max_sentences):
                with gr.Group(visible=False, elem_id='result-%d' % k) as group:
                    info = gr.Markdown(elem_id='info-%d' % k)
                    with gr.Row():
                        over = gr.Image(label='mask over the image', format='png',
                                        interactive=False, elem_id='overlay-%d' % k)
                        mask = gr.Image(label='mask (PNG)', format='png', image_mode='L',
                                        interactive=False, buttons=['download'],
                                        elem_id='mask-%d' % k)
                        crf = gr.Image(label='DenseCRF mask (PNG)', format='png',
                                       image_mode='L', interactive=False, visible=False,
                                       buttons=['download'], elem_id='mask-dcrf-%d' % k)
                    fig = gr.Image(label='how CMPC read it', format='png', interactive=False,
                                   visible=p.levels, elem_id='explain-%d' % k)
                slots.append((group, info, over, mask, crf, fig))

            def show_preview(path, frame_number):
                """The uploaded image (the video's chosen frame), labelled with its name and
                size or what is wrong."""
                if not path:
                    return gr.Image(value=None, label='Image')
                try:
                    _, image, what = self.read_input(path, frame_number)
                except InputError as e:
                    return gr.Image(value=None, label='error: %s' % e)
                return gr.Image(value=image, label='%s, %s' % (os.path.basename(path), what))

            def segment(path, sentences, use_dcrf, frame_number):
                msg, results = self.segment(path, sentences, use_dcrf, frame_number)
                updates = [msg]
                for k in range(self.max_sentences):
                    r = results[k] if k < len(results) else None
                    updates += [gr.Group(visible=r is not None),
                                r['markdown'] if r else '',
                                r['overlay'] if r else None,
                                r['mask'] if r else None,
                                gr.Image(value=r['mask_dcrf'] if r else None,
                                         visible=bool(r and r['mask_dcrf'] is not None)),
                                r['explain'] if r else None]
                return updates

            upload.change(show_preview, inputs=[upload, frame], outputs=preview)
            frame.change(show_preview, inputs=[upload, frame], outputs=preview)
            inputs = [upload, text, dcrf, frame]
            outputs = [message] + [c for slot in slots for c in slot]
            run.click(segment, inputs=inputs, outputs=outputs)
            text.submit(segment, inputs=inputs, outputs=outputs)
        return page

    def serve(self, host='127.0.0.1', port=7860, max_upload_mb=50):
        """Builds the page and serves it on host:port until interrupted (never through a share
        link)."""
        import gradio as gr
        theme = gr.themes.Default(font=['ui-sans-serif', 'system-ui', 'sans-serif'],
                                  font_mono=['ui-monospace', 'monospace'])  # no web fonts
        page = self.build()
        page.queue(default_concurrency_limit=1)  # one prediction at a time: one model
        page.launch(server_name=host, server_port=port, share=False, inbrowser=False,
                    max_file_size='%dmb' % max_upload_mb, ssr_mode=False, theme=theme,
                    footer_links=[], quiet=False)
