"""The demo page (demo.py, util/inference/demo.py): its pieces in-process, then the real thing: the server
started as a user starts it, driven in headless Chromium (Debian's chromium and chromium-driver,
with Selenium), its masks compared pixel for pixel with predict mode's files.

The browser test runs on a tiny checkpoint with random weights. To run it on the main job's
model and write the README's screenshot:

    CMPC_DEMO_CHECKPOINT=ckpts/synthetic CMPC_DEMO_SCREENSHOT=docs/demo.png \\
        .venv/bin/python -m pytest -q tests/test_demo.py -k browser
(the image and its two sentences are then the first example of data/synthetic's val split).
"""

import io
import os
import re
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, TINY, randomise, run_main, script_command, script_env, write_vocab
from util.cli import InputError

pytestmark = pytest.mark.eager  # tf.functions run eagerly (conftest.py)

CHROMIUM, CHROMEDRIVER = '/usr/bin/chromium', '/usr/bin/chromedriver'
SENTENCES = ['the red circle left of the big star', 'blorp zzzt']  # the 2nd: no known word
MAX_PIXELS = 20000  # the server's --max-pixels in the browser test: 130x90 fits, 200x200 not


def write_scene(path, h, w, seed=0):
    """A bright block on noise (the tests' usual generated image)."""
    rng = np.random.RandomState(seed)
    im = rng.randint(0, 120, size=(h, w, 3)).astype(np.uint8)
    im[h // 4:h // 2, w // 3:2 * w // 3] = (230, 40, 40)
    Image.fromarray(im).save(path)
    return path


def write_checkpoint(root, model_class, kwargs, dataset, seed):
    """A tiny model with random biases and a calibrated backbone (so that its masks are
    neither empty nor full), saved recording its vocabulary: (model, prefix, vocabulary)."""
    import tensorflow as tf
    tf.random.set_seed(seed)
    model = model_class(mode='eval', **kwargs)
    randomise(model, seed)
    rng = np.random.RandomState(seed)
    model.backbone.calibrate((rng.randn(4, TINY['H'], TINY['W'], 3) * 50).astype(np.float32))
    vocab = write_vocab(os.path.join(root, 'vocab.txt'), TINY['vocab_size'])
    prefix = os.path.join(root, 'ckpt', '%s_iter_5.tfmodel' % dataset)
    model.save(prefix, {'vocab': vocab})
    return model, prefix, vocab


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A tiny checkpoint whose masks are neither empty nor full (random biases and a calibrated
    backbone: about 95 % foreground, different per sentence), its vocabulary, an image, and
    predict mode's output (with -c) for the image and SENTENCES."""
    from CMPC_model import LSTM_model
    root = str(tmp_path_factory.mktemp('demo'))
    _, prefix, vocab = write_checkpoint(root, LSTM_model, TINY, 'unc', seed=0)
    paths = {'root': root, 'checkpoint': prefix, 'vocab': vocab,
             'image': write_scene(os.path.join(root, 'scene.png'), 90, 130)}
    args = ['-m', 'predict', '--checkpoint', prefix, '--image', paths['image'], '-c',
            '--out-dir', os.path.join(root, 'predicted'), '--no-explain']
    for s in SENTENCES:
        args += ['--sentence', s]
    run_main(args, root)
    return paths


def predicted_png(root, k, name):
    """predict mode's {name}.png of sentence k on the workspace's scene."""
    folder = os.path.join(root, 'predicted', 'scene')
    sub = [d for d in sorted(os.listdir(folder)) if d.startswith('%02d_' % k)][0]
    return np.asarray(Image.open(os.path.join(folder, sub, name + '.png')))


# ---------------------------------------------------------------------------------------------
# The pieces, in-process

def test_read_sentences():
    from util.inference.demo import read_sentences
    assert read_sentences('  the cat \n\n big dog\n') == ['the cat', 'big dog']
    for text, expected in (('', 'no sentence'), ('\n  \n', 'no sentence'),
                           ('a\nb\nc', '3 sentences: this page shows at most 2'),
                           ('the cat\n . ', "sentence 2 ('.'): empty sentence")):
        with pytest.raises(InputError, match=re.escape(expected)):
            read_sentences(text, max_sentences=2)


def test_read_upload_refuses_what_is_not_a_usable_image(tmp_path):
    from util.inference.demo import read_upload
    text = tmp_path / 'notes.txt'
    text.write_text('not an image')
    with pytest.raises(InputError, match='notes.txt: cannot read it as an image'):
        read_upload(str(text), 10 ** 6)
    big = write_scene(str(tmp_path / 'big.png'), 200, 300)
    with pytest.raises(InputError, match=r'big.png: 300x200 is 0.1 megapixels; this server takes '
                                         r'images of at most 0.0 megapixels'):
        read_upload(big, 20000)
    assert read_upload(big, 60000).shape == (200, 300, 3)
    with pytest.raises(InputError, match='no image'):
        read_upload(None, 10 ** 6)


def test_segment_gives_predict_modes_masks_and_says_what_it_read(workspace):
    from util.inference.demo import Demo
    from util.inference.predict import Predictor
    demo = Demo(Predictor(workspace['checkpoint']), max_sentences=3)
    message, slots = demo.segment(workspace['image'], '\n'.join(SENTENCES), True)
    assert message == '2 sentences on a 130x90 image, with DenseCRF.'
    assert len(slots) == 2
    for k, slot in enumerate(slots):
        mask = predicted_png(workspace['root'], k, 'mask')
        assert 0 < (mask > 0).mean() < 1
        np.testing.assert_array_equal(slot['mask'], mask)
        np.testing.assert_array_equal(slot['mask_dcrf'], predicted_png(workspace['root'], k,
                                                                       'mask_dcrf'))
        np.testing.assert_array_equal(slot['overlay'], predicted_png(workspace['root'], k,
                                                                     'overlay'))
        assert slot['explain'].ndim == 3 and slot['explain'].shape[2] == 3
        ys, xs = np.nonzero(mask)
        box = 'box x %d, y %d, %d x %d px' % (xs.min(), ys.min(), xs.max() - xs.min() + 1,
                                             ys.max() - ys.min() + 1)
        assert ('**mask**: %d px (%.1f%% of the image), %s'
                % ((mask > 0).sum(), 100 * (mask > 0).mean(), box)) in slot['markdown']
    assert '| `circle` |' in slots[0]['markdown'] and 'Unknown' not in slots[0]['markdown']
    assert '**Every word is unknown to the vocabulary**' in slots[1]['markdown']
    assert '| `blorp` (unknown) |' in slots[1]['markdown']
    # The two sentences give different masks, so the comparison above pairs them up.
    assert not np.array_equal(slots[0]['mask'], slots[1]['mask'])
    assert demo.predictor.forward.backbone_runs == 1  # the image once for both sentences
    # Bad input: a message, no result.
    assert demo.segment(workspace['image'], '', False) == (
        'error: no sentence: type one referring expression per line', [])
    assert demo.segment(workspace['vocab'], 'the cat', False)[0].startswith(
        'error: vocab.txt: cannot read it as an image')


def test_a_failure_inside_the_model_is_a_message_not_a_traceback(workspace, capsys):
    from util.inference.demo import Demo
    from util.inference.predict import Predictor

    class Failing(Predictor):
        def predict(self, image, sentence, dcrf=False):
            raise RuntimeError('out of memory')

    demo = Demo(Failing(workspace['checkpoint']))
    assert demo.segment(workspace['image'], 'the cat', False) == (
        'error: the model failed on this input (RuntimeError: out of memory); the server log '
        'has the traceback', [])
    assert 'Traceback' in capsys.readouterr().err


@pytest.mark.slow  # exports and loads a SavedModel: in CI (.ci/run)
def test_saved_model_gives_the_same_masks(workspace, tmp_path):
    from util.inference.demo import Demo
    from util.inference.export import SavedModelPredictor
    export_dir = str(tmp_path / 'exported')
    run_main(['-m', 'export', '--checkpoint', workspace['checkpoint'], '--export-dir',
              export_dir], workspace['root'])
    demo = Demo(SavedModelPredictor(export_dir))
    message, slots = demo.segment(workspace['image'], '\n'.join(SENTENCES), False)
    assert message == '2 sentences on a 130x90 image.'
    for k, slot in enumerate(slots):
        np.testing.assert_array_equal(slot['mask'], predicted_png(workspace['root'], k, 'mask'))
        assert slot['explain'] is None and slot['mask_dcrf'] is None
    assert '| `blorp` (unknown) |' in slots[1]['markdown']
    assert demo.segment(workspace['image'], 'the cat', True)[0].startswith(
        'error: DenseCRF is not available with a SavedModel')
    with pytest.raises(InputError, match='not a SavedModel written by'):
        SavedModelPredictor(str(tmp_path))


@pytest.fixture(scope='module')
def video_workspace(tmp_path_factory):
    """A tiny video checkpoint (random biases, calibrated backbone) recording its vocabulary,
    and a 12-frame 64x80 .mp4 of a square moving right."""
    from CMPC_video.CMPC_video_mm_tgraph_allvec import LSTM_model
    from helpers import VIDEO_TINY
    from tools.synthetic_video import write_mp4
    root = str(tmp_path_factory.mktemp('demo_video'))
    # seed 3: masks about half the frame
    model, prefix, vocab = write_checkpoint(root, LSTM_model, VIDEO_TINY, 'a2d_sent_new', seed=3)
    video = np.random.RandomState(0).randint(0, 100, size=(12, 64, 80, 3)).astype(np.uint8)
    for f in range(12):
        video[f, 20:40, 4 * f:4 * f + 20] = (230, 40, 40)
    path = os.path.join(root, 'clip.mp4')
    write_mp4(path, video)
    return {'root': root, 'checkpoint': prefix, 'vocab': vocab, 'video': path, 'model': model}


def test_video_checkpoint_segments_the_chosen_frame_of_a_video(video_workspace):
    """The page's prediction for frame 3 of a 12-frame video is test mode's for the clip
    [1, 1, 1, 1, 1, 1, 1, 2, 3, ..., 10] (the original's window [3 - 8, 3 + 8) clamped to the
    video), computed here with the original's pre- and post-processing."""
    import av
    import skimage
    from util import im_processing
    from util.inference.demo import Demo
    from util.inference.predict import Predictor
    from util.text_processing import load_vocab_dict_from_file, preprocess_sentence
    ws = video_workspace
    predictor = Predictor(ws['checkpoint'], kinds=('image', 'video'))
    assert predictor.video
    demo = Demo(predictor)
    message, slots = demo.segment(ws['video'], 'the red square moving right\nblorp', False, 3)
    assert message == '2 sentences on frame 3 of 12 of a 80x64 video.'
    with av.open(ws['video']) as container:
        frames = [f.to_ndarray(format='rgb24') for f in container.decode(video=0)]
    clip = [frames[i - 1] for i in [1, 1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]
    model, vocab = ws['model'], load_vocab_dict_from_file(ws['vocab'])
    MU = np.array((104.00698793, 116.66876762, 122.67891434))
    net = np.stack([skimage.img_as_ubyte(im_processing.resize_and_pad(f, model.H, model.W))
                    .astype(np.float32)[:, :, ::-1] - MU for f in clip]).astype(np.float32)
    for slot, sentence in zip(slots, ('the red square moving right', 'blorp')):
        words = np.array(preprocess_sentence(sentence, vocab, model.num_steps), np.int32)
        up = model.forward(words[None], net[None])['up'][0, :, :, 0]
        expected = im_processing.resize_and_crop((up >= 1e-9).astype(np.float32), 64, 80) > 0
        np.testing.assert_array_equal(slot['mask'] > 0, expected)
        assert 0 < expected.mean() < 1
        assert slot['explain'].ndim == 3
    assert '| word | type | entity | attribute | static relation | action | unnecessary |' \
        in slots[0]['markdown']
    assert demo.segment(ws['video'], 'the cat', False, 13)[0] == \
        'error: frame 13: clip.mp4 has frames 1 to 12'
    assert demo.segment(ws['vocab'], 'the cat', False, 0)[0].startswith(
        'error: vocab.txt: cannot be decoded as a video')
    # 0: the middle frame, 6 of 12.
    assert demo.segment(ws['video'], 'the cat', False, 0)[0].startswith('1 sentence on frame 6 of')


def test_synthetic_video_examples(tmp_path):
    from util.inference.demo import synthetic_video_examples
    from tools.synthetic_video import generate
    generate(str(tmp_path), train_videos=1, test_videos=4, frames=18)
    examples = synthetic_video_examples(str(tmp_path))
    assert examples, 'no test video with twins among 4'
    for path, sentences, frame in examples:
        assert os.path.isfile(path) and frame in (6, 12, 18) and len(sentences.split('\n')) == 2
    assert synthetic_video_examples(str(tmp_path / 'none')) == []


@pytest.mark.cli
def test_demo_refuses_bad_flags_and_checkpoints(tmp_path):
    proc = run_main(['--help'], ROOT, script='demo.py')
    for flag in ('--checkpoint', '--saved-model', '--port', '--host', '--max-pixels'):
        assert flag in proc.stdout
    assert 'the video model' in proc.stdout
    proc = run_main(['--checkpoint', str(tmp_path / 'nothing')], ROOT, script='demo.py',
                    check=False)
    assert proc.returncode != 0 and 'error: --checkpoint' in proc.stderr
    proc = run_main(['--saved-model', str(tmp_path)], ROOT, script='demo.py', check=False)
    assert proc.returncode != 0 and 'not a SavedModel written by' in proc.stderr
    proc = run_main(['--checkpoint', 'x', '--port', '0'], ROOT, script='demo.py', check=False)
    assert proc.returncode == 2 and '--port: expected 1..65535' in proc.stderr
    proc = run_main(['--saved-model', str(tmp_path), '--fold'], ROOT, script='demo.py',
                    check=False)
    assert proc.returncode == 2 and '--fold go with --checkpoint' in proc.stderr


def test_fold_reaches_the_demos_model(workspace, monkeypatch):
    """demo.py --fold builds the page's model with fold (the masks: test_predict.py)."""
    import demo
    from util.inference import demo as page
    served = []
    monkeypatch.setattr(page.Demo, 'serve', lambda self, *args: served.append(self))
    demo.main(['--checkpoint', workspace['checkpoint'], '--fold', '--synthetic-examples',
               'nowhere'])
    assert served[0].predictor.model.fold and served[0].predictor.model.mode == 'eval'


# ---------------------------------------------------------------------------------------------
# The page in a real browser

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(args, cwd, timeout=300):
    """demo.py started as a user starts it; returns (process, URL) once the page answers."""
    port = free_port()
    log = open(os.path.join(cwd, 'demo_server.log'), 'w')
    proc = subprocess.Popen(script_command(args + ['--port', str(port)], 'demo.py'), cwd=cwd,
                            env=script_env(), stdout=log, stderr=subprocess.STDOUT)
    url = 'http://127.0.0.1:%d/' % port
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, open(log.name).read()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(1)
    proc.kill()
    raise AssertionError('demo.py did not answer in %d s:\n%s' % (timeout,
                                                                  open(log.name).read()[-3000:]))


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # Headless, and nothing that would try to reach the network.
    for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
                '--disable-quic', '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--window-size=1400,1000'):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope='module')
def page_inputs(workspace):
    """(checkpoint, image, sentences, expected masks or None): the workspace's, or with
    CMPC_DEMO_CHECKPOINT the main job's model on a synthetic val image."""
    checkpoint = os.environ.get('CMPC_DEMO_CHECKPOINT')
    if not checkpoint:
        return workspace['checkpoint'], workspace['image'], SENTENCES, [
            (predicted_png(workspace['root'], k, 'mask'),
             predicted_png(workspace['root'], k, 'overlay'),
             predicted_png(workspace['root'], k, 'mask_dcrf')) for k in range(2)]
    from util.inference.demo import synthetic_examples
    image, text = synthetic_examples(os.path.join(ROOT, 'data', 'synthetic'))[0]
    sentences = text.split('\n')
    out = os.path.join(workspace['root'], 'predicted_main')
    args = ['-m', 'predict', '--checkpoint', os.path.join(ROOT, checkpoint), '--image', image,
            '-c', '--out-dir', out, '--no-explain']
    for s in sentences:
        args += ['--sentence', s]
    run_main(args, workspace['root'])
    name = os.path.splitext(os.path.basename(image))[0]
    folders = sorted(os.listdir(os.path.join(out, name)))
    read = lambda k, f: np.asarray(Image.open(os.path.join(out, name, folders[k], f + '.png')))
    return (os.path.join(ROOT, checkpoint), image, sentences,
            [(read(k, 'mask'), read(k, 'overlay'), read(k, 'mask_dcrf')) for k in range(2)])


def need_chromium():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get('CI'):
            pytest.fail('CI needs Debian chromium and chromium-driver (.ci/run installs them)')
        pytest.skip('needs Debian chromium and chromium-driver: apt-get install chromium '
                    'chromium-driver')


class DemoPage:
    """demo.py serving `args` in tmp_path, and headless Chromium on its page; a context manager
    that stops both."""

    def __init__(self, args, tmp_path):
        need_chromium()
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait
        self.By = By
        self.server, self.url = start_server(args, str(tmp_path))
        try:
            self.driver = browser()
        except Exception:
            self.stop_server()
            raise
        self.wait = WebDriverWait(self.driver, 240)
        self.driver.get(self.url)
        self.wait.until(lambda d: self.find('#image-file input[type=file]'))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.driver.quit()
        self.stop_server()

    def stop_server(self):
        self.server.terminate()
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def find(self, css):
        """The elements matching css (a list, empty if none)."""
        return self.driver.find_elements(self.By.CSS_SELECTOR, css)

    def text(self, css):
        return self.find(css)[0].text

    def message(self):
        return self.text('#message')

    def idle(self):
        """While the server works, the message box shows Gradio's 'processing' tracker."""
        return 'hide' in self.find('#message [data-testid=status-tracker]')[0].get_attribute(
            'class')

    def resources(self):
        """The URLs of everything the page has loaded (scripts, styles, fonts, images, ...)."""
        return self.driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")

    def preview_label(self):
        return self.text('#preview [data-testid=block-label]')

    def submit(self, path, text, dcrf=False, frame=None):
        """Uploads path (None: keeps the file), sets the frame (video), types text, runs;
        returns the message once the server has answered (a message other than the last)."""
        if frame is not None:
            box = self.find('#frame input')[0]
            box.clear()
            box.send_keys(str(frame))
        if path:
            clear = self.find('#image-file button[aria-label=Clear]')
            if clear:  # a file is there: clear it, and wait for the preview to empty
                clear[0].click()
                self.wait.until(lambda d: self.preview_label() == 'Image')
            self.wait.until(lambda d: self.find('#image-file input[type=file]'))
            self.find('#image-file input[type=file]')[0].send_keys(path)
            name = os.path.basename(path)
            self.wait.until(lambda d: name in self.preview_label())
        box = self.find('#sentences textarea')[0]
        box.clear()
        box.send_keys(text)
        tick = self.find('#dcrf input[type=checkbox]')[0]
        if tick.is_selected() != dcrf:
            tick.click()
        before = self.message()
        self.find('#segment')[0].click()
        self.wait.until(lambda d: self.idle() and self.message() != before)
        return self.message()

    def shown_png(self, css):
        """The PNG an <img> of the page shows, fetched from the server."""
        src = [img.get_attribute('src') for img in self.find(css + ' img')
               if 'file=' in (img.get_attribute('src') or '')]
        assert src, 'no image in %s' % css
        with urllib.request.urlopen(src[0], timeout=30) as r:
            return np.asarray(Image.open(io.BytesIO(r.read())))

    def screenshot(self, path):
        """The whole page as a PNG (the window grown to the page's height)."""
        for _ in range(3):  # the page reflows to the new width once, then keeps its height
            height = self.driver.execute_script('return document.documentElement.scrollHeight')
            self.driver.set_window_size(1400, min(height + 160, 8000))
            time.sleep(1)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.driver.save_screenshot(path)
        self.driver.set_window_size(1400, 1000)


@pytest.mark.slow  # a minute each: in CI (.ci/run), not in the default suite
@pytest.mark.cli
def test_browser_page_shows_predict_modes_masks_and_bad_input_messages(page_inputs, tmp_path):
    checkpoint, image, sentences, expected = page_inputs
    main_job = bool(os.environ.get('CMPC_DEMO_CHECKPOINT'))
    args = ['--checkpoint', checkpoint, '--max-pixels', str(10 ** 6 if main_job else MAX_PIXELS),
            '--synthetic-examples', os.path.join(ROOT, 'data', 'synthetic')]
    with DemoPage(args, tmp_path) as page:
        assert 'CMPC: referring image segmentation' in page.text('body')
        # Nothing leaves the machine: no web fonts, scripts or images from elsewhere.
        assert page.resources() and all(u.startswith(page.url) for u in page.resources())

        # Two sentences, with DenseCRF: two panels whose masks are predict mode's.
        assert page.submit(image, '\n'.join(sentences), dcrf=True).startswith('2 sentences on a')
        for k, (mask, over, mask_dcrf) in enumerate(expected):
            page.wait.until(lambda d: page.text('#info-%d' % k).startswith(
                '%d. "%s"' % (k + 1, sentences[k])))
            np.testing.assert_array_equal(page.shown_png('#mask-%d' % k), mask)
            np.testing.assert_array_equal(page.shown_png('#overlay-%d' % k)[:, :, :3], over)
            np.testing.assert_array_equal(page.shown_png('#mask-dcrf-%d' % k), mask_dcrf)
            assert page.find('#explain-%d img' % k)[0].is_displayed()
        assert not page.find('#result-2 img')
        if not main_job:
            assert 'Every word is unknown' in page.text('#info-1')
        page.screenshot(os.environ.get('CMPC_DEMO_SCREENSHOT', str(tmp_path / 'demo.png')))

        # A file that is not an image, then a huge image, then no sentence: messages in the
        # page, and the server goes on serving.
        bad = tmp_path / 'notes.txt'
        bad.write_text('not an image')
        assert page.submit(str(bad), 'the cat').startswith(
            'error: notes.txt: cannot read it as an image')
        assert not page.find('#result-0 img')
        if not main_job:
            big = write_scene(str(tmp_path / 'big.png'), 200, 200)
            assert page.submit(big, 'the cat').startswith(
                'error: big.png: 200x200 is 0.0 megapixels')
        assert page.submit(image, '   ') == \
            'error: no sentence: type one referring expression per line'
        assert page.submit(None, sentences[0]).startswith('1 sentence on a')
        np.testing.assert_array_equal(page.shown_png('#mask-0'), expected[0][0])
        assert page.server.poll() is None
        assert all(u.startswith(page.url) for u in page.resources())


@pytest.mark.slow  # a minute each: in CI (.ci/run), not in the default suite
@pytest.mark.cli
def test_browser_page_with_a_video_checkpoint(video_workspace, tmp_path):
    """A video in, frame 3 chosen: the page's mask is the Predictor's (whose equality with
    test mode's computation test_video_checkpoint_segments_the_chosen_frame_of_a_video shows)."""
    from util.inference.demo import Demo
    from util.inference.predict import Predictor
    ws = video_workspace
    sentence = 'the red square moving right'
    expected = Demo(Predictor(ws['checkpoint'], kinds=('image', 'video'))).segment(
        ws['video'], sentence, False, 3)[1][0]['mask']
    with DemoPage(['--checkpoint', ws['checkpoint']], tmp_path) as page:
        assert 'CMPC: referring video segmentation' in page.text('body')
        assert page.submit(ws['video'], sentence, frame=3) == \
            '1 sentence on frame 3 of 12 of a 80x64 video.'
        assert 'clip.mp4, frame 3 of 12' in page.preview_label()
        np.testing.assert_array_equal(page.shown_png('#mask-0'), expected)
        assert 'static relation' in page.text('#info-0')  # the video model's word types
