"""A hostile cloud for bounded-read tests: an HTTP server that speaks just enough of the
Swift (TempAuth v1) and S3 APIs for the real drivers, and answers object GETs and listings
with what the test sets: any status, any headers, a body of any length (sent until the
client hangs up), chunked or not, or dripped (one byte at a time, a pause before each).
Its authentication answers (TempAuth's ``/auth/v1.0``, Keystone's ``/v3/auth/tokens``) can
be set the same way. It counts the body bytes it got onto the wire for each request, which
bounds what the client could have read, and the requests whose answer it is still
sending (``busy``).
"""
import http.server
import json
import threading
import time

MIB = 1024 * 1024
BLOCK = b'\0' * (64 * 1024)


class Answer:
    """``status``, extra ``headers``, ``length`` body bytes (``chunked``: no length).

    ``drip``: seconds to wait before each byte of the answer (status line and headers
    included when ``drip_headers``), a cloud keeping every socket wait under its timeout.
    """

    def __init__(self, status=200, length=0, headers=None, chunked=False, body=None,
                 drip=None, drip_headers=False):
        self.status, self.length, self.chunked = status, length, chunked
        self.headers = dict(headers or {})
        self.body = body
        self.drip, self.drip_headers = drip, drip_headers


class HostileCloud:
    def __init__(self):
        self.answers = {}       # path suffix -> Answer (the longest matching suffix wins)
        self.auth = None        # the Answer to authentication requests (None: a good one)
        self.sent = {}          # request path -> body bytes written before the hang-up
        self.busy = 0           # answers being sent now
        self._busy_lock = threading.Lock()
        cloud = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                length = int(self.headers.get('Content-Length') or 0)
                if length:
                    self.rfile.read(length)
                if self.path.startswith(('/auth/v1.0', '/v3/auth/tokens')):
                    if cloud.auth is not None:
                        cloud._answer(self, cloud.auth)
                        return
                    storage = 'http://127.0.0.1:%d/v1/AUTH_t' % self.server.server_port
                    body = json.dumps({'token': {'catalog': [{'type': 'object-store',
                                                              'endpoints': [{
                                                                  'interface': 'public',
                                                                  'url': storage}]}]}})
                    self.send_response(201 if self.command == 'POST' else 200)
                    self.send_header('X-Storage-Url', storage)
                    self.send_header('X-Auth-Token', 'tk')
                    self.send_header('X-Subject-Token', 'tk')
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body.encode())
                    return
                cloud._answer(self)

            do_PUT = do_GET
            do_HEAD = do_GET
            do_POST = do_GET

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def reset(self):
        """Count the next requests' bytes afresh.

        A new dict, not ``clear()``: an answer to an earlier test's request may still be
        writing (its client hung up, the server has not noticed yet, later under load) and
        must not add its bytes to the next test's count.
        """
        self.sent = {}

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.server.server_port

    def _answer(self, handler, answer=None):
        with self._busy_lock:
            self.busy += 1
        try:
            self._send(handler, answer)
        finally:
            with self._busy_lock:
                self.busy -= 1

    def _drip(self, handler, answer):
        """Send the status line and headers (and the body) one byte at a time."""
        head = ['HTTP/1.1 %d Hostile\r\n' % answer.status] + [
            '%s: %s\r\n' % item for item in answer.headers.items()]
        if 'Content-Length' not in answer.headers:
            head.append('Content-Length: %d\r\n' % max(answer.length, 1 << 20))
        data = ''.join(head + ['\r\n']).encode() + (answer.body or b'\0' * answer.length)
        counts = self.sent
        sent = 0
        try:
            for byte in data:
                time.sleep(answer.drip)
                handler.wfile.write(bytes((byte,)))
                handler.wfile.flush()
                sent += 1
        except OSError:         # the client hung up (at its deadline)
            pass
        finally:
            handler.close_connection = True
            counts[handler.path] = counts.get(handler.path, 0) + sent

    def _send(self, handler, answer):
        if answer is None:
            path = handler.path.split('?', 1)
            match = [k for k in self.answers if path[0].endswith(k) or (
                k.startswith('?') and len(path) > 1 and k[1:] in path[1])]
            answer = self.answers[max(match, key=len)] if match else Answer(404)
        if answer.drip is not None and answer.drip_headers:
            self._drip(handler, answer)
            return
        handler.send_response(answer.status)
        for name, value in answer.headers.items():
            handler.send_header(name, value)
        if answer.chunked:
            handler.send_header('Transfer-Encoding', 'chunked')
        elif 'Content-Length' not in answer.headers:
            handler.send_header('Content-Length', str(answer.length))
        handler.end_headers()
        counts = self.sent      # the count of the test that made this request (reset())
        sent = 0
        try:
            if answer.drip is not None:
                handler.wfile.flush()
                while sent < answer.length:
                    time.sleep(answer.drip)
                    handler.wfile.write(b'\0')
                    handler.wfile.flush()
                    sent += 1
            if answer.body is not None:
                handler.wfile.write(answer.body)
                sent = len(answer.body)
            while sent < answer.length:
                block = BLOCK[:answer.length - sent]
                if answer.chunked:
                    handler.wfile.write(b'%x\r\n%s\r\n' % (len(block), block))
                else:
                    handler.wfile.write(block)
                sent += len(block)
            if answer.chunked:
                handler.wfile.write(b'0\r\n\r\n')
            handler.wfile.flush()
        except OSError:         # BrokenPipe, ConnectionReset: the client hung up
            handler.close_connection = True
        finally:
            counts[handler.path] = counts.get(handler.path, 0) + sent

    def close(self):
        self.server.shutdown()
        self.server.server_close()
