"""A hostile cloud for bounded-read tests: an HTTP server that speaks just enough of the
Swift (TempAuth v1) and S3 APIs for the real drivers, and answers object GETs and listings
with what the test sets: any status, any headers, a body of any length (sent until the
client hangs up), chunked or not. It counts the body bytes it got onto the wire for each
request, which bounds what the client could have read.
"""
import http.server
import threading

MIB = 1024 * 1024
BLOCK = b'\0' * (64 * 1024)


class Answer:
    """``status``, extra ``headers``, ``length`` body bytes (``chunked``: no length)."""

    def __init__(self, status=200, length=0, headers=None, chunked=False, body=None):
        self.status, self.length, self.chunked = status, length, chunked
        self.headers = dict(headers or {})
        self.body = body


class HostileCloud:
    def __init__(self):
        self.answers = {}       # path suffix -> Answer (the longest matching suffix wins)
        self.sent = {}          # request path -> body bytes written before the hang-up
        cloud = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith('/auth/v1.0'):
                    port = self.server.server_port
                    self.send_response(200)
                    self.send_header('X-Storage-Url', 'http://127.0.0.1:%d/v1/AUTH_t' % port)
                    self.send_header('X-Auth-Token', 'tk')
                    self.send_header('Content-Length', '0')
                    self.end_headers()
                    return
                cloud._answer(self)

            do_PUT = do_GET
            do_HEAD = do_GET

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

    def _answer(self, handler):
        path = handler.path.split('?', 1)
        match = [k for k in self.answers if path[0].endswith(k) or (
            k.startswith('?') and len(path) > 1 and k[1:] in path[1])]
        answer = self.answers[max(match, key=len)] if match else Answer(404)
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
        except (BrokenPipeError, ConnectionResetError):
            handler.close_connection = True
        finally:
            counts[handler.path] = counts.get(handler.path, 0) + sent

    def close(self):
        self.server.shutdown()
        self.server.server_close()
