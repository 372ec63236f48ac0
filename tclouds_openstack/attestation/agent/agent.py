"""The host agent: the compute host's TPM, reachable only through the message bus.

Like nova-compute it is an oslo.messaging RPC server on its own topic
(``tclouds-attestation-agent``, server = the Nova compute host name) and opens no listening
port. At start it loads its attestation key (AK) from ``[attestation] agent_state_dir``, or
creates one under the EK, and registers with the registrar (EK + EK certificate + AK,
then TPM2_ActivateCredential). Then it answers quote requests: a TPM2_Quote with the
verifier's nonce over the requested PCRs, the UEFI event log (or, when it is the one whose
digest the verifier sent, ``uefi_log_unchanged``: agent API 1.1) and the IMA entries from
the requested offset; a request cast with a request id (API 1.2) is answered by a cast to
the requesting worker's queue on the answer topic. It never sends key material: the AK
private blob is wrapped by the TPM and stays on disk.

The TPM connection is opened lazily and re-opened after a failure, because a TPM that was
reset (or a swtpm a test power-cycled) invalidates every handle.
"""
import json
import logging
import os
import threading

import oslo_messaging as messaging

from tclouds_openstack.attestation.agent import tpm_device
from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.common import fileutils

LOG = logging.getLogger(__name__)
AK_FILE = 'ak.json'
MAX_PCRS = 24


class AgentEndpoint(object):
    """RPC methods the verifier may call on this host."""

    target = messaging.Target(version=rpcapi.AGENT_VERSION)

    def __init__(self, agent):
        self.agent = agent

    def get_quote(self, ctxt, nonce, selection, ima_offset, uefi_log_digest=None):
        return self.agent.answer(nonce, selection, ima_offset, uefi_log_digest)

    def request_quote(self, ctxt, request_id, reply_to, nonce, selection, ima_offset,
                      uefi_log_digest=None):
        """API 1.2 (a cast): the answer is cast back to the requesting worker's queue."""
        self.agent.answer_cast(request_id, reply_to, nonce, selection, ima_offset,
                               uefi_log_digest)


class Agent(object):
    """One host's agent. ``host``/``tcti``/paths default to the configuration."""

    def __init__(self, conf, transport, host=None, tcti=None, state_dir=None,
                 uefi_eventlog=None, ima_log=None):
        self.conf = conf
        self.transport = transport
        self.host = host or conf.host
        self.tcti = tcti or conf.tpm.tcti
        self.state_dir = state_dir or conf.attestation.agent_state_dir
        self.uefi_eventlog = uefi_eventlog or conf.attestation.uefi_eventlog
        self.ima_log = ima_log or conf.attestation.ima_log
        self.key_type = conf.attestation.agent_key_algorithm
        self._lock = threading.Lock()
        self._device = None
        self.ak = None
        self.server = None
        self._answers = None        # RPC client of the answer topic (API 1.2)
        # (file identity, (first entry, [byte position of that entry, the next, ...]))
        self._ima_index = (None, (None, None))

    # ------------------------------------------------------------------ TPM
    def device(self):
        with self._lock:
            if self._device is None:
                self._device = tpm_device.TPMDevice(self.tcti)
            return self._device

    def disconnect(self):
        """Close the TPM connection (re-opened on next use)."""
        with self._lock:
            device, self._device = self._device, None
        if device is not None:
            device.close()

    def _ak_path(self):
        return os.path.join(self.state_dir, AK_FILE)

    def load_or_create_ak(self):
        """The AK from the state directory, or a new one under the EK (saved 0600)."""
        device = self.device()
        path = self._ak_path()
        if os.path.exists(path):
            try:
                with open(path) as f:
                    saved = json.load(f)
                self.ak = device.load_ak(bytes.fromhex(saved['public']),
                                         bytes.fromhex(saved['private']))
                device.ak_tpm_name(self.ak)     # loads it: fails if another TPM's blob
                return self.ak, False
            except (OSError, ValueError, KeyError, tpm_device.TPMDeviceError) as e:
                LOG.warning('saved AK %s unusable (%s); creating a new one', path, e)
        self.ak = device.create_ak(self.key_type)
        fileutils.private_dir(self.state_dir)
        tmp = path + '.tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            json.dump({'public': self.ak.public.hex(), 'private': self.ak.private.hex()}, f)
        os.replace(tmp, path)
        return self.ak, True

    def register(self):
        """Register EK + certificate + AK and prove they share the TPM (raises on refusal).

        Returns the registration state: ``active``, or ``awaiting_approval`` while the EK
        is not enrolled for this host name.
        """
        if self.ak is None:
            self.load_or_create_ak()
        device = self.device()
        registrar = rpcapi.RegistrarAPI(self.transport,
                                        topic=self.conf.attestation.registrar_topic)
        id_object, encrypted_secret = registrar.register(
            self.host, device.ek_public(), device.ek_certificate(), self.ak.public)
        secret = device.activate_credential(self.ak, id_object, encrypted_secret)
        reply = registrar.activate(self.host, self.ak.name, secret)
        state = reply.get('status') if isinstance(reply, dict) else None
        if state == 'awaiting_approval':
            LOG.warning('agent %s registered, AK %s; the registration awaits an admin\'s '
                        'approval of this TPM\'s EK for this host name (openstack attestation '
                        'host approve %s): not attested until then', self.host,
                        self.ak.name.hex(), self.host)
        else:
            LOG.info('agent %s registered, AK %s', self.host, self.ak.name.hex())
        return state

    # ------------------------------------------------------------------ RPC
    def start(self):
        """Serve quote requests on the bus (threads); register first if not yet done."""
        if self.ak is None:
            self.load_or_create_ak()
        target = messaging.Target(topic=self.conf.attestation.agent_topic, server=self.host)
        self._answers = messaging.get_rpc_client(
            self.transport, messaging.Target(
                topic=rpcapi.answer_topic(self.conf.attestation.agent_topic), version='1.0'))
        self.server = messaging.get_rpc_server(self.transport, target, [AgentEndpoint(self)],
                                               executor='threading')
        self.server.start()
        return self

    def stop(self):
        if self.server is not None:
            server, self.server = self.server, None
            server.stop()
            server.wait()
        self.disconnect()

    def answer_cast(self, request_id, reply_to, nonce, selection, ima_offset,
                    uefi_log_digest=None):
        """Answer a 1.2 request: cast ``quote_answer`` to ``reply_to`` on the answer topic.

        Only to a server of the answer topic (``reply_to`` is a name, never a topic), so a
        request cannot make the agent cast anywhere else; a request without a usable
        request id or reply name is dropped (logged): there is nobody to answer.
        """
        if not rpcapi.is_request_id(request_id) or not rpcapi.is_reply_to(reply_to):
            LOG.warning('quote request dropped: request_id %.40r, reply_to %.80r',
                        request_id, reply_to)
            return
        out = self.answer(nonce, selection, ima_offset, uefi_log_digest)
        # the worker matches an answer to its request by id and host (errors too)
        out.setdefault('host', self.host)
        out.setdefault('agent_api', rpcapi.AGENT_VERSION)
        answers = self._answers
        if answers is None:
            return
        try:
            answers.prepare(server=reply_to).cast({}, 'quote_answer', request_id=request_id,
                                                  answer=out)
        except messaging.MessagingException as e:
            LOG.warning('answer to quote request %s not sent: %s', request_id, e)

    def answer(self, nonce, selection, ima_offset, uefi_log_digest=None):
        """Quote + logs for one request. Bad requests get an 'error' field, not a trace.

        ``uefi_log_digest``: the SHA-256 (hex) of the UEFI event log the verifier holds;
        when the log is that one, the answer says ``uefi_log_unchanged`` (the digest)
        instead of carrying it.
        """
        try:
            nonce = rpcapi.unb64({'nonce': nonce}, 'nonce')
            if not 8 <= len(nonce) <= 64:
                raise rpcapi.BadMessage('nonce: must be 8..64 bytes')
            if not isinstance(selection, dict) or not selection:
                raise rpcapi.BadMessage('selection: expected {bank: [pcr, ...]}')
            clean = {}
            for bank, pcrs in selection.items():
                if not isinstance(pcrs, list) or not all(
                        isinstance(p, int) and 0 <= p < MAX_PCRS for p in pcrs):
                    raise rpcapi.BadMessage('selection.%s: expected PCR indexes 0..23' % bank)
                clean[str(bank)] = pcrs
            if not isinstance(ima_offset, int) or ima_offset < 0:
                raise rpcapi.BadMessage('ima_offset: expected a non-negative integer')
            if uefi_log_digest is not None and not rpcapi.is_log_digest(uefi_log_digest):
                raise rpcapi.BadMessage('uefi_log_digest: expected 64 lower-case hex digits')
        except rpcapi.BadMessage as e:
            return {'error': str(e)}
        try:
            attest, signature, values = self._quote(nonce, clean)
        except (tpm_device.TPMDeviceError, ValueError) as e:
            return {'error': 'TPM: %s' % e}
        uefi = self._read(self.uefi_eventlog)
        ima_lines, start = self._ima_since(ima_offset)
        out = {
            'host': self.host,
            # agent API 1.2: the verifier may ask by cast (request_quote) from now on
            'agent_api': rpcapi.AGENT_VERSION,
            'attest': rpcapi.b64(attest),
            'signature': rpcapi.b64(signature),
            'pcr_values': {bank: {str(i): v.hex() for i, v in pcrs.items()}
                           for bank, pcrs in values.items()},
            'ima_log': rpcapi.b64(ima_lines),
            'ima_offset': start,
        }
        if (uefi is not None and uefi_log_digest is not None
                and rpcapi.log_digest(uefi) == uefi_log_digest):
            out['uefi_log_unchanged'] = uefi_log_digest
        else:
            out['uefi_log'] = rpcapi.b64(uefi)
        return out

    def _quote(self, nonce, selection):
        for attempt in (1, 2):
            try:
                return self.device().quote(self.ak, nonce, selection)
            except tpm_device.TPMDeviceError:
                # a reset TPM (reboot) invalidates handles: reconnect once, then give up
                self.disconnect()
                if attempt == 2:
                    raise

    @staticmethod
    def _read(path):
        try:
            with open(path, 'rb') as f:
                return f.read()
        except OSError:
            return None

    @staticmethod
    def _ends_a_line(f, position):
        """Whether ``position`` follows a newline (a list rewritten in place fails this)."""
        if position == 0:
            return True
        f.seek(position - 1)
        return f.read(1) == b'\n'

    def _ima_since(self, offset):
        """IMA lines from entry ``offset``: (bytes, start entry); from 0 after a reboot.

        The list only grows during a boot, so the agent remembers the byte position of
        every entry it last answered and seeks there instead of re-reading the whole list
        each round (the verifier asks from the last entry it accepted, which may lie
        anywhere in the last answer when the quote covered only a prefix). A last line
        without its newline is being written by the kernel: it is left for the next round.
        A list that is shorter than the remembered position, a different file, a position
        that no longer follows a newline, or an offset outside the last answer is read
        again from the start.
        """
        try:
            f = open(self.ima_log, 'rb')
        except OSError:
            return None, offset
        with f:
            st = os.fstat(f.fileno())
            key = (st.st_dev, st.st_ino)
            base, starts = self._ima_index[1] if self._ima_index[0] == key else (None, None)
            if (starts is None or not base <= offset < base + len(starts)
                    or st.st_size < starts[-1]
                    or not self._ends_a_line(f, starts[offset - base])):
                # no usable position: count entries from the start of the list
                base, starts = 0, [0]
                position = 0
                f.seek(0)
                for line in f:
                    if not line.endswith(b'\n'):
                        break
                    position += len(line)
                    starts.append(position)
                if offset >= len(starts):
                    offset = 0      # a shorter list than the verifier's offset: rebooted
            f.seek(starts[offset - base])
            data = f.read()
        complete = data[:data.rfind(b'\n') + 1]
        position = starts[offset - base]
        index = [position]
        for line in complete.splitlines(keepends=True):
            position += len(line)
            index.append(position)
        self._ima_index = (key, (offset, index))
        return complete, offset
