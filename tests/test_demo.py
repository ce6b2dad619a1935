"""The demo page (demo.py, util/demo.py): its pieces in-process, then the real thing: the server
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

from helpers import ROOT, TINY, randomise, run_script, script_command, script_env, write_vocab
from util.cli import InputError

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


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A tiny checkpoint whose masks are neither empty nor full (random biases and a calibrated
    backbone: about 95 % foreground, different per sentence), its vocabulary, an image, and
    predict mode's output (with -c) for the image and SENTENCES."""
    import tensorflow as tf
    from CMPC_model import LSTM_model
    root = str(tmp_path_factory.mktemp('demo'))
    tf.random.set_seed(0)
    model = LSTM_model(mode='eval', **TINY)
    randomise(model, 0)
    rng = np.random.RandomState(0)
    model.backbone.calibrate((rng.randn(4, TINY['H'], TINY['W'], 3) * 50).astype(np.float32))
    vocab = write_vocab(os.path.join(root, 'vocab.txt'), TINY['vocab_size'])
    prefix = os.path.join(root, 'ckpt', 'unc_iter_5.tfmodel')
    model.save(prefix, {'vocab': vocab})
    paths = {'root': root, 'checkpoint': prefix, 'vocab': vocab,
             'image': write_scene(os.path.join(root, 'scene.png'), 90, 130)}
    args = ['-m', 'predict', '--checkpoint', prefix, '--image', paths['image'], '-c',
            '--out-dir', os.path.join(root, 'predicted'), '--no-explain']
    for s in SENTENCES:
        args += ['--sentence', s]
    run_script(args, root)
    return paths


def predicted_png(root, k, name):
    """predict mode's {name}.png of sentence k on the workspace's scene."""
    folder = os.path.join(root, 'predicted', 'scene')
    sub = [d for d in sorted(os.listdir(folder)) if d.startswith('%02d_' % k)][0]
    return np.asarray(Image.open(os.path.join(folder, sub, name + '.png')))


# ---------------------------------------------------------------------------------------------
# The pieces, in-process

def test_read_sentences():
    from util.demo import read_sentences
    assert read_sentences('  the cat \n\n big dog\n') == ['the cat', 'big dog']
    for text, expected in (('', 'no sentence'), ('\n  \n', 'no sentence'),
                           ('a\nb\nc', '3 sentences: this page shows at most 2'),
                           ('the cat\n . ', "sentence 2 ('.'): empty sentence")):
        with pytest.raises(InputError, match=re.escape(expected)):
            read_sentences(text, max_sentences=2)


def test_read_upload_refuses_what_is_not_a_usable_image(tmp_path):
    from util.demo import read_upload
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
    from util.demo import Demo
    from util.predict import Predictor
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
    # Bad input: a message, no result.
    assert demo.segment(workspace['image'], '', False) == (
        'error: no sentence: type one referring expression per line', [])
    assert demo.segment(workspace['vocab'], 'the cat', False)[0].startswith(
        'error: vocab.txt: cannot read it as an image')


def test_saved_model_gives_the_same_masks(workspace, tmp_path):
    from util.demo import Demo
    from util.export import SavedModelPredictor
    export_dir = str(tmp_path / 'exported')
    run_script(['-m', 'export', '--checkpoint', workspace['checkpoint'], '--export-dir',
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


@pytest.mark.cli
def test_demo_refuses_bad_flags_and_checkpoints(tmp_path):
    proc = run_script(['--help'], ROOT, script='demo.py')
    for flag in ('--checkpoint', '--saved-model', '--port', '--host', '--max-pixels'):
        assert flag in proc.stdout
    assert 'command-line only' in proc.stdout
    proc = run_script(['--checkpoint', str(tmp_path / 'nothing')], ROOT, script='demo.py',
                      check=False)
    assert proc.returncode != 0 and 'error: --checkpoint' in proc.stderr
    proc = run_script(['--saved-model', str(tmp_path)], ROOT, script='demo.py', check=False)
    assert proc.returncode != 0 and 'not a SavedModel written by' in proc.stderr
    proc = run_script(['--checkpoint', 'x', '--port', '0'], ROOT, script='demo.py', check=False)
    assert proc.returncode == 2 and '--port: expected 1..65535' in proc.stderr


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


def shown_png(driver, css):
    """The PNG an <img> of the page shows, fetched from the server."""
    from selenium.webdriver.common.by import By
    src = [img.get_attribute('src') for img in driver.find_elements(By.CSS_SELECTOR, css + ' img')
           if 'file=' in (img.get_attribute('src') or '')]
    assert src, 'no image in %s' % css
    with urllib.request.urlopen(src[0], timeout=30) as r:
        return np.asarray(Image.open(io.BytesIO(r.read())))


def full_page_screenshot(driver, path):
    for _ in range(3):  # the page reflows to the new width once, then keeps its height
        height = driver.execute_script('return document.documentElement.scrollHeight')
        driver.set_window_size(1400, min(height + 160, 8000))
        time.sleep(1)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    driver.save_screenshot(path)


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
    from util.demo import synthetic_examples
    image, text = synthetic_examples(os.path.join(ROOT, 'data', 'synthetic'))[0]
    sentences = text.split('\n')
    out = os.path.join(workspace['root'], 'predicted_main')
    args = ['-m', 'predict', '--checkpoint', os.path.join(ROOT, checkpoint), '--image', image,
            '-c', '--out-dir', out, '--no-explain']
    for s in sentences:
        args += ['--sentence', s]
    run_script(args, workspace['root'])
    name = os.path.splitext(os.path.basename(image))[0]
    folders = sorted(os.listdir(os.path.join(out, name)))
    read = lambda k, f: np.asarray(Image.open(os.path.join(out, name, folders[k], f + '.png')))
    return (os.path.join(ROOT, checkpoint), image, sentences,
            [(read(k, 'mask'), read(k, 'overlay'), read(k, 'mask_dcrf')) for k in range(2)])


@pytest.mark.cli
def test_browser_page_shows_predict_modes_masks_and_bad_input_messages(workspace, page_inputs,
                                                                        tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get('CI'):
            pytest.fail('CI needs Debian chromium and chromium-driver (.ci/run installs them)')
        pytest.skip('needs Debian chromium and chromium-driver: apt-get install chromium '
                    'chromium-driver')
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    checkpoint, image, sentences, expected = page_inputs
    main_job = bool(os.environ.get('CMPC_DEMO_CHECKPOINT'))
    server, url = start_server(['--checkpoint', checkpoint, '--max-pixels',
                                str(10 ** 6 if main_job else MAX_PIXELS), '--synthetic-examples',
                                os.path.join(ROOT, 'data', 'synthetic')], str(tmp_path))
    driver = None
    try:
        driver = browser()
        wait = WebDriverWait(driver, 240)
        driver.get(url)
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#image-file input[type=file]'))
        assert 'command-line only' in driver.find_element(By.TAG_NAME, 'body').text
        message = lambda: driver.find_element(By.ID, 'message').text
        # While the server works, the message box also shows Gradio's 'processing' tracker.
        idle = lambda: 'hide' in driver.find_element(
            By.CSS_SELECTOR, '#message [data-testid=status-tracker]').get_attribute('class')
        preview_label = lambda: driver.find_element(By.CSS_SELECTOR,
                                                    '#preview [data-testid=block-label]').text

        def submit(path, text, dcrf=False):
            """Uploads path (None: keeps the file), types text, runs; returns the message once
            the server has answered (each call here expects a message other than the last)."""
            if path:
                clear = driver.find_elements(By.CSS_SELECTOR, '#image-file button[aria-label=Clear]')
                if clear:  # a file is there: clear it, and wait for the preview to empty
                    clear[0].click()
                    wait.until(lambda d: preview_label() == 'Image')
                upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR,
                                                             '#image-file input[type=file]'))
                upload.send_keys(path)
                name = os.path.basename(path)
                wait.until(lambda d: name in preview_label())
            box = driver.find_element(By.CSS_SELECTOR, '#sentences textarea')
            box.clear()
            box.send_keys(text)
            tick = driver.find_element(By.CSS_SELECTOR, '#dcrf input[type=checkbox]')
            if tick.is_selected() != dcrf:
                tick.click()
            before = message()
            driver.find_element(By.ID, 'segment').click()
            wait.until(lambda d: idle() and message() != before)
            return message()

        # Two sentences, with DenseCRF: two panels whose masks are predict mode's.
        assert submit(image, '\n'.join(sentences), dcrf=True).startswith('2 sentences on a')
        for k, (mask, over, mask_dcrf) in enumerate(expected):
            wait.until(lambda d: d.find_element(By.ID, 'info-%d' % k).text.startswith(
                '%d. "%s"' % (k + 1, sentences[k])))
            np.testing.assert_array_equal(shown_png(driver, '#mask-%d' % k), mask)
            np.testing.assert_array_equal(shown_png(driver, '#overlay-%d' % k)[:, :, :3], over)
            np.testing.assert_array_equal(shown_png(driver, '#mask-dcrf-%d' % k), mask_dcrf)
            assert driver.find_element(By.CSS_SELECTOR, '#explain-%d img' % k).is_displayed()
        assert not driver.find_elements(By.CSS_SELECTOR, '#result-2 img')
        if not main_job:
            assert 'Every word is unknown' in driver.find_element(By.ID, 'info-1').text
        full_page_screenshot(driver, os.environ.get('CMPC_DEMO_SCREENSHOT',
                                                    str(tmp_path / 'demo.png')))
        driver.set_window_size(1400, 1000)

        # A file that is not an image, then a huge image, then no sentence: messages in the
        # page, and the server goes on serving.
        bad = tmp_path / 'notes.txt'
        bad.write_text('not an image')
        assert submit(str(bad), 'the cat').startswith(
            'error: notes.txt: cannot read it as an image')
        assert not driver.find_elements(By.CSS_SELECTOR, '#result-0 img')
        if not main_job:
            big = write_scene(str(tmp_path / 'big.png'), 200, 200)
            assert submit(big, 'the cat').startswith('error: big.png: 200x200 is 0.0 megapixels')
        assert submit(image, '   ') == 'error: no sentence: type one referring expression per line'
        assert submit(None, sentences[0]).startswith('1 sentence on a')
        np.testing.assert_array_equal(shown_png(driver, '#mask-0'), expected[0][0])
        assert server.poll() is None
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
