"""A readable, plain-text report for the demo: chapters, steps with a mark, tables."""
import sys

OK, FAIL, INFO = 'ok', 'FAIL', '--'


class Report(object):
    """Collects the steps of a demo run.

    ``expectation_failures`` counts steps whose outcome was not the expected one (a
    rejected tampered quote is an expected outcome, marked ok).
    """

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.expectation_failures = 0

    def chapter(self, title):
        self.out.write('\n%s\n%s\n' % (title, '=' * len(title)))

    def step(self, text, ok=True, detail=None):
        mark = OK if ok else FAIL
        if not ok:
            self.expectation_failures += 1
        self.out.write('  [%-4s] %s\n' % (mark, text))
        if detail:
            for line in str(detail).splitlines():
                self.out.write('           %s\n' % line)
        self.out.flush()

    def note(self, text):
        self.out.write('  [%-4s] %s\n' % (INFO, text))
        self.out.flush()

    def table(self, headers, rows):
        widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
        fmt = '  ' + '  '.join('%%-%ds' % w for w in widths) + '\n'
        self.out.write(fmt % tuple(headers))
        self.out.write(fmt % tuple('-' * w for w in widths))
        for row in rows:
            self.out.write(fmt % tuple(row))
        self.out.flush()
