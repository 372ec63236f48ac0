"""Files that hold secrets or verdicts: created readable by their owner only.

Key stores, verdict databases, sealing and signing keys are created 0600, and the
directories we create for them 0700 (every missing level), before anything is written, so
no window exists in which another local user can open them (the umask can only make the
modes stricter). Files that already exist are left as the operator made them; one that
other users can read is reported, once per process, with the command that fixes it.
"""
import logging
import os
import stat

LOG = logging.getLogger(__name__)
_REPORTED = set()


def private_dir(path):
    """Create ``path`` and any missing parent 0700; an existing directory is kept."""
    path = current = os.path.abspath(path)
    missing = []
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass                # created meanwhile by another process
    return path


def private_file(path, what='file'):
    """Create ``path`` empty and 0600 (directories 0700) unless it exists; True if created.

    ``what`` names the file in the warning about an existing file other users can read.
    """
    private_dir(os.path.dirname(os.path.abspath(path)))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        warn_if_exposed(path, what)
        return False
    os.close(fd)
    return True


def warn_if_exposed(path, what='file'):
    """Log a warning when ``path`` can be read or written by group or others."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) and mode & 0o077 and path not in _REPORTED:
        _REPORTED.add(path)
        LOG.warning('%s %s is accessible to other users (mode %04o): run chmod 600 %s',
                    what, path, stat.S_IMODE(mode), path)
