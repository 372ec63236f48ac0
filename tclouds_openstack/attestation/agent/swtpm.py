"""Software TPMs (swtpm) for development, tests, the demo and DevStack. Not for production.

:class:`Swtpm` runs one ``swtpm socket --tpm2`` process on loopback, with its own state
directory and two free TCP ports (TPM command port P, control port P+1: the tpm2-tss
``swtpm`` TCTI assumes the control port is the next one). The control socket is bound here
and handed to swtpm as a file descriptor; swtpm binds the command port itself (its
``fd=`` there means a connected client), so a lost race for P is retried with a new pair.
The TPM is usable when :meth:`Swtpm.start` returns (a few ms: 100 instances are practical).

:class:`LocalCA` is a private ``swtpm_localca`` certificate authority (its config and keys
live in a directory you choose, never /var/lib/swtpm-localca). ``Swtpm(..., ca=LocalCA(d))``
manufactures the TPM with ``swtpm_setup``: persistent RSA and ECC endorsement keys, their
EK certificates in NV and a platform certificate, all issued by that CA.
"""
import atexit
import os
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

from tclouds_openstack.common import fileutils

# TPM2_Startup(TPM_SU_CLEAR) (Part 3, 9.3): tag TPM_ST_NO_SESSIONS, size 12, TPM_CC_Startup.
_TPM2_STARTUP_CLEAR = struct.pack('>HIIH', 0x8001, 12, 0x144, 0x0000)
# TPM2_Shutdown(TPM_SU_CLEAR) (Part 3, 9.4): an orderly shutdown before a kept state stops.
_TPM2_SHUTDOWN_CLEAR = struct.pack('>HIIH', 0x8001, 12, 0x145, 0x0000)
# TPM2_Shutdown(TPM_SU_STATE): saved state, so the next Startup is a TPM Restart or Resume
# (Part 1, 36.6: restartCount grows, resetCount does not), as before a hibernation.
_TPM2_SHUTDOWN_STATE = struct.pack('>HIIH', 0x8001, 12, 0x145, 0x0001)
_SHUTDOWNS = {'clear': _TPM2_SHUTDOWN_CLEAR, 'state': _TPM2_SHUTDOWN_STATE}
# TPM2_GetRandom(1), used as the liveness probe.
_TPM2_GETRANDOM_1 = struct.pack('>HIIH', 0x8001, 12, 0x17B, 1)
_TPM_RC_INITIALIZE = 0x100

_running = set()
_running_lock = threading.Lock()


class SwtpmError(Exception):
    """swtpm, swtpm_setup or swtpm_ioctl failed; the message carries their output."""


class _PortTaken(Exception):
    pass


def _tool(name):
    path = shutil.which(name)
    if path is None:
        raise SwtpmError('%s is not installed (Debian: apt-get install swtpm swtpm-tools)' % name)
    return path


class LocalCA:
    """A swtpm_localca CA in ``directory`` (created on first provisioning).

    The CA has a self-signed root and an issuer (intermediate) that signs EK and platform
    certificates; :meth:`ca_bundle_pem` is what a registrar trusts (``[tpm] ek_ca_bundle``).
    """

    def __init__(self, directory, pcr_banks=('sha256', 'sha1')):
        self.directory = os.path.abspath(directory)
        self.state_dir = os.path.join(self.directory, 'ca')
        fileutils.private_dir(self.state_dir)
        self.signing_key = os.path.join(self.state_dir, 'signkey.pem')
        self.issuer_cert = os.path.join(self.state_dir, 'issuercert.pem')
        self.root_cert = os.path.join(self.state_dir, 'swtpm-localca-rootca-cert.pem')
        self.localca_conf = os.path.join(self.directory, 'swtpm-localca.conf')
        self.localca_options = os.path.join(self.directory, 'swtpm-localca.options')
        self.setup_conf = os.path.join(self.directory, 'swtpm_setup.conf')
        self._write(self.localca_conf,
                    'statedir = %s\nsigningkey = %s\nissuercert = %s\ncertserial = %s\n'
                    % (self.state_dir, self.signing_key, self.issuer_cert,
                       os.path.join(self.state_dir, 'certserial')))
        self._write(self.localca_options, '--platform-manufacturer tclouds\n'
                    '--platform-model swtpm\n--platform-version 1.0\n')
        self._write(self.setup_conf,
                    'create_certs_tool = %s\ncreate_certs_tool_config = %s\n'
                    'create_certs_tool_options = %s\nactive_pcr_banks = %s\n'
                    % (_tool('swtpm_localca'), self.localca_conf, self.localca_options,
                       ','.join(pcr_banks)))

    @staticmethod
    def _write(path, text):
        with open(path, 'w') as f:
            f.write(text)

    def ca_bundle_pem(self):
        """Root and issuer certificates (PEM bytes); SwtpmError before the first provisioning."""
        try:
            with open(self.root_cert, 'rb') as root, open(self.issuer_cert, 'rb') as issuer:
                return root.read() + issuer.read()
        except OSError as e:
            raise SwtpmError('LocalCA %s has no certificates yet (provision a TPM first): %s'
                             % (self.directory, e))

    def provision(self, tpm_state_dir, log_file):
        """swtpm_setup: EKs, EK certificates and a platform certificate into a new state."""
        cmd = [_tool('swtpm_setup'), '--tpm2', '--tpmstate', tpm_state_dir,
               '--config', self.setup_conf, '--createek', '--create-ek-cert',
               '--create-platform-cert', '--lock-nvram', '--overwrite', '--logfile', log_file]
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                timeout=120)
        if result.returncode != 0:
            try:
                with open(log_file, errors='replace') as f:
                    log = f.read()[-2000:]
            except OSError:
                log = ''
            raise SwtpmError('swtpm_setup failed (rc %d): %s %s'
                             % (result.returncode, result.stderr.decode(errors='replace'), log))


def _local_port_range():
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low, high = (int(v) for v in f.read().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _bind_port_pair():
    """A free port P on 127.0.0.1 and a listening socket on P+1, or SwtpmError.

    P is drawn below the ephemeral range: there every port of a closed client connection
    lingers in TIME_WAIT (thousands when many swtpms start), and P+1 would rarely be free.
    """
    low, _ = _local_port_range()
    for _ in range(200):
        port = random.randrange(max(1024, low - 20000), low - 1)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ctrl = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            probe.bind(('127.0.0.1', port))
            ctrl.bind(('127.0.0.1', port + 1))
        except OSError:
            ctrl.close()
            continue
        finally:
            probe.close()
        ctrl.listen(8)
        return port, ctrl
    raise SwtpmError('no pair of adjacent free TCP ports on 127.0.0.1')


class Swtpm:
    """One swtpm TPM 2.0 process.

    ``state_dir``: where its state lives (a temporary directory, removed on :meth:`stop`,
    when None); ``ca``: a :class:`LocalCA` to manufacture the TPM with EK certificates
    on first start. Use as a context manager, or call :meth:`start` / :meth:`stop`.
    """

    def __init__(self, state_dir=None, ca=None):
        self._own_state = state_dir is None
        self.state_dir = os.path.abspath(state_dir) if state_dir else None
        self.ca = ca
        self.proc = None
        self.port = None
        self.ctrl_port = None

    @property
    def tcti(self):
        """The tpm2-tss TCTI string (``TPM2TOOLS_TCTI`` / ``[tpm] tcti``)."""
        return 'swtpm:host=127.0.0.1,port=%d' % self.port

    @property
    def provisioned(self):
        return os.path.exists(os.path.join(self.state_dir, '.tclouds-provisioned'))

    def start(self, timeout=10.0):
        if self.proc is not None:
            raise SwtpmError('swtpm already started')
        if self.state_dir is None:
            self.state_dir = tempfile.mkdtemp(prefix='swtpm-')
        fileutils.private_dir(self.state_dir)
        if self.ca is not None and not self.provisioned:
            self.ca.provision(self.state_dir, os.path.join(self.state_dir, 'swtpm_setup.log'))
            open(os.path.join(self.state_dir, '.tclouds-provisioned'), 'w').close()
        for attempt in range(5):
            port, ctrl = _bind_port_pair()
            try:
                self.port, self.ctrl_port = port, port + 1
                self.proc = subprocess.Popen(
                    [_tool('swtpm'), 'socket', '--tpm2',
                     '--server', 'type=tcp,port=%d,bindaddr=127.0.0.1' % port,
                     '--ctrl', 'type=tcp,fd=%d' % ctrl.fileno(),
                     '--tpmstate', 'dir=%s' % self.state_dir,
                     '--flags', 'not-need-init,startup-clear',
                     '--log', 'file=%s' % os.path.join(self.state_dir, 'swtpm.log')],
                    pass_fds=(ctrl.fileno(),), stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            finally:
                ctrl.close()
            with _running_lock:
                _running.add(self)
            try:
                self._wait_ready(timeout)
                return self
            except _PortTaken:
                self.stop(keep_state=True)
            except BaseException:
                self.stop()
                raise
        raise SwtpmError('swtpm could not bind a free port in 5 attempts')

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                output = self.proc.stderr.read().decode(errors='replace')
                try:
                    with open(os.path.join(self.state_dir, 'swtpm.log'), errors='replace') as f:
                        output += f.read()[-2000:]
                except OSError:
                    pass
                if 'in use' in output or 'bind' in output.lower():
                    raise _PortTaken()      # another process took port P: retry
                raise SwtpmError('swtpm exited with %s: %s'
                                 % (self.proc.returncode, output.strip()))
            try:
                self.tpm_command(_TPM2_GETRANDOM_1, timeout=0.5)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise SwtpmError('swtpm on port %d did not answer within %.1f s'
                                     % (self.port, timeout))
                time.sleep(0.002)

    def tpm_command(self, command, timeout=5.0):
        """Send one raw TPM command on a fresh connection; returns the response bytes.

        swtpm serves one client at a time: this waits while another client is connected.
        """
        with socket.create_connection(('127.0.0.1', self.port), timeout) as sock:
            sock.sendall(command)
            response = b''
            while len(response) < 10 or len(response) < struct.unpack('>I', response[2:6])[0]:
                chunk = sock.recv(4096)
                if not chunk:
                    raise OSError('swtpm closed the connection')
                response += chunk
        return response

    def reboot(self, orderly=True):
        """Power-cycle the TPM (swtpm_ioctl -i, then TPM2_Startup(CLEAR)), like a host reboot.

        PCRs 0-15 return to their reset values and clockInfo.resetCount grows by one.
        ``orderly``: the OS shuts the TPM down first (TPM2_Shutdown(CLEAR)), so the clock
        stays safe; False is a power loss (clockInfo.safe turns NO until the TPM next saves
        its clock, about 4 s later in swtpm). Transient objects and sessions are gone: close
        TPM clients (TPMDevice) first.
        """
        if orderly:
            self.tpm_command(_TPM2_SHUTDOWN_CLEAR)
        result = subprocess.run([_tool('swtpm_ioctl'), '--tcp', '127.0.0.1:%d' % self.ctrl_port,
                                 '-i'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                timeout=30)
        if result.returncode != 0:
            raise SwtpmError('swtpm_ioctl -i failed: %s' % result.stdout.decode(errors='replace'))
        response = self.tpm_command(_TPM2_STARTUP_CLEAR)
        rc = struct.unpack('>I', response[6:10])[0]
        if rc not in (0, _TPM_RC_INITIALIZE):
            raise SwtpmError('TPM2_Startup(CLEAR) after reboot returned 0x%x' % rc)

    def stop(self, keep_state=False, shutdown='clear'):
        """Shut the TPM down and terminate swtpm (idempotent).

        A temporary state directory is removed unless ``keep_state``; a kept state gets an
        orderly TPM2_Shutdown first (``shutdown`` 'clear': restarting it looks like a clean
        host restart, a TPM Reset; 'state': like a hibernation, the restart is a TPM
        Restart; None: no shutdown, a power loss).
        """
        proc, self.proc = self.proc, None
        keeping = self.state_dir and not (self._own_state and not keep_state)
        if proc is not None and proc.poll() is None and keeping and shutdown:
            # Like an OS shutting down: the next start sees an orderly shutdown
            # (clockInfo.safe stays YES), not a power loss. Skipped if a client holds
            # the (single-client) command port.
            try:
                self.tpm_command(_SHUTDOWNS[shutdown], timeout=0.5)
            except (OSError, struct.error):
                pass
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr:
                proc.stderr.close()
        with _running_lock:
            _running.discard(self)
        if self._own_state and self.state_dir and not keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            self.state_dir = None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_all():
    """Never leave swtpm processes behind, even when a caller forgot stop()."""
    with _running_lock:
        instances = list(_running)
    for tpm in instances:
        tpm.stop()
