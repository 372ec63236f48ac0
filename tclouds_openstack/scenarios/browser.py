"""Check a scenario's HTML report in headless Chromium: screenshot and expected elements.

Chromium loads the file (``file://``, nothing from the network), runs the page's own
script, and dumps the resulting DOM; every expected element (:func:`.report.
expected_elements`) must be in it, and each one the page marks with ``data-check`` must
have been laid out with a non-empty box (``data-laid-out="yes"``, set by the page's
script from the browser's layout). A screenshot (PNG) is taken and checked to be an image
of the expected size that is not blank.
"""
import html.parser
import os
import shutil
import struct
import subprocess
import tempfile
import zlib

CANDIDATES = ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable')
WINDOW = (1280, 2400)


class BrowserError(Exception):
    """Chromium is missing or failed (the message says why)."""


def find_chromium():
    """The Chromium binary, None when there is none.

    ``TCLOUDS_CHROMIUM``, else the first of :data:`CANDIDATES` on PATH.
    """
    explicit = os.environ.get('TCLOUDS_CHROMIUM')
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def parse_dom(text):
    collector = _Collector()
    collector.feed(text)
    collector.close()
    return collector.elements


def _matches(element, tag, attrs):
    etag, eattrs = element
    if etag != tag:
        return False
    for key, value in attrs.items():
        have = eattrs.get(key)
        if key == 'class':
            if have is None or value not in have.split():
                return False
        elif have != value:
            return False
    return True


def check_dom(dom, expected):
    """Problems of a dumped DOM against ``expected`` (empty list: all present)."""
    elements = parse_dom(dom)
    problems = []
    body = [a for t, a in elements if t == 'body']
    if not body or not body[0].get('data-rendered'):
        problems.append('the page\'s script did not run (no data-rendered on body)')
    for description, tag, attrs in expected:
        found = [e for e in elements if _matches(e, tag, attrs)]
        if not found:
            problems.append('missing: %s (<%s %s>)' % (description, tag, ' '.join(
                '%s="%s"' % kv for kv in sorted(attrs.items()))))
            continue
        checked = [e for e in found if 'data-check' in e[1]]
        if checked and not any(e[1].get('data-laid-out') == 'yes' for e in checked):
            problems.append('not laid out (empty box): %s' % description)
    return problems


def png_info(data):
    """``(width, height, distinct byte values of the pixel data)`` of a PNG."""
    if data[:8] != b'\x89PNG\r\n\x1a\n':
        raise BrowserError('the screenshot is not a PNG')
    pos, width, height, idat = 8, None, None, []
    while pos + 8 <= len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            width, height = struct.unpack('>II', chunk[:8])
        elif kind == b'IDAT':
            idat.append(chunk)
        pos += 12 + length
    if width is None or not idat:
        raise BrowserError('the screenshot PNG has no header or no image data')
    try:
        raw = zlib.decompress(b''.join(idat))
    except zlib.error as e:
        raise BrowserError('the screenshot PNG does not decompress: %s' % e)
    return width, height, len(set(raw))


def _run(binary, args, timeout):
    try:
        return subprocess.run([binary] + args, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BrowserError('%s did not finish within %d s' % (binary, timeout))
    except OSError as e:
        raise BrowserError('cannot run %s: %s' % (binary, e))


def check_report(html_path, screenshot_path, expected, binary=None, timeout=180):
    """Load the report in headless Chromium and check it.

    Returns a dict with ``ok``, ``problems``, ``screenshot`` and ``elements_checked``.
    Raises :class:`BrowserError` when Chromium is absent or fails to run.
    """
    binary = binary or find_chromium()
    if not binary:
        raise BrowserError('no Chromium (install the Debian package chromium, or set '
                           'TCLOUDS_CHROMIUM)')
    url = 'file://' + os.path.abspath(html_path)
    with tempfile.TemporaryDirectory(prefix='tclouds-chromium-') as profile:
        common = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-extensions',
                  '--no-first-run', '--user-data-dir=%s' % profile,
                  '--window-size=%d,%d' % WINDOW, '--hide-scrollbars']
        dumped = _run(binary, common + ['--virtual-time-budget=5000', '--dump-dom', url],
                      timeout)
        if dumped.returncode != 0 or not dumped.stdout:
            raise BrowserError('chromium --dump-dom exit %d: %s' % (
                dumped.returncode, dumped.stderr.decode('utf-8', 'replace')[-500:]))
        shot = _run(binary, common + ['--screenshot=%s' % os.path.abspath(screenshot_path),
                                      url], timeout)
    problems = check_dom(dumped.stdout.decode('utf-8', 'replace'), expected)
    if shot.returncode != 0 or not os.path.exists(screenshot_path):
        problems.append('no screenshot: chromium exit %d: %s' % (
            shot.returncode, shot.stderr.decode('utf-8', 'replace')[-300:]))
        info = None
    else:
        with open(screenshot_path, 'rb') as f:
            width, height, distinct = png_info(f.read())
        info = {'file': screenshot_path, 'width': width, 'height': height,
                'distinct_byte_values': distinct}
        if (width, height) != WINDOW:
            problems.append('screenshot is %dx%d, want %dx%d' % ((width, height) + WINDOW))
        if distinct < 8:
            problems.append('screenshot is blank (%d distinct byte values)' % distinct)
    return {'ok': not problems, 'problems': problems, 'screenshot': info,
            'elements_checked': len(expected), 'chromium': binary}
