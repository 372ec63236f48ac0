"""The host agent's TPM 2.0: endorsement key, attestation keys, quotes, PCRs (tpm2-pytss ESAPI).

One :class:`TPMDevice` holds one long-lived ESAPI context on a TCTI (``device:/dev/tpmrm0``
in production, ``swtpm:host=127.0.0.1,port=N`` in tests). Without a resource manager
(swtpm has none) transient objects and sessions must be flushed by their user: every
session is flushed after its command, the EK (when created from the template rather than
persistent) and at most one attestation key stay loaded, and :meth:`TPMDevice.close`
flushes them. Everything the TPM returns is handed back as marshalled bytes, which the
pure core (:mod:`tclouds_openstack.tpm.structures`) parses; TPM failures raise
:class:`TPMDeviceError` with the TPM response code text. Not thread-safe by itself: calls
are serialised by a lock.
"""
import os
import threading

# ESYS logs every failed command to stderr, including the expected ones (probing NV for an
# EK certificate that is not there); errors still reach the caller as TPMDeviceError.
os.environ.setdefault('TSS2_LOG', 'all+none')

from tpm2_pytss.constants import ESYS_TR  # noqa: E402
from tpm2_pytss.constants import TPM2_ALG  # noqa: E402
from tpm2_pytss.constants import TPM2_SE  # noqa: E402
from tpm2_pytss.constants import TPMA_OBJECT  # noqa: E402
from tpm2_pytss import ESAPI  # noqa: E402
from tpm2_pytss import TCTILdr  # noqa: E402
from tpm2_pytss.TSS2_Exception import TSS2_Exception  # noqa: E402
from tpm2_pytss import types as tpm_types  # noqa: E402
from tpm2_pytss.utils import create_ek_template  # noqa: E402
from tpm2_pytss.utils import NVReadEK  # noqa: E402

from tclouds_openstack.tpm import constants  # noqa: E402
from tclouds_openstack.tpm import errors  # noqa: E402
from tclouds_openstack.tpm import structures  # noqa: E402

# TCG EK Credential Profile 2.3, 2.2.1.4 and TCG Provisioning Guidance 7.8: persistent EK
# handles and EK certificate NV indexes. swtpm_setup 0.7 makes an RSA-2048 EK at 0x81010001
# (certificate 0x01c00002) and a NIST P-384 EK at 0x81010016 (certificate 0x01c00016).
EK_PERSISTENT_HANDLES = {'rsa': (0x81010001,), 'ecc': (0x81010002, 0x81010016)}
EK_CERT_NV_INDEXES = {'rsa': (0x01c00002,), 'ecc': (0x01c0000a, 0x01c00016)}
EK_TEMPLATES = {'rsa': 'EK-RSA2048', 'ecc': 'EK-ECC256'}
AK_TEMPLATES = {'rsa': 'rsa2048:rsassa-sha256:null', 'ecc': 'ecc256:ecdsa-sha256:null'}
AK_ATTRIBUTES = (TPMA_OBJECT.RESTRICTED | TPMA_OBJECT.SIGN_ENCRYPT | TPMA_OBJECT.FIXEDTPM
                 | TPMA_OBJECT.FIXEDPARENT | TPMA_OBJECT.SENSITIVEDATAORIGIN
                 | TPMA_OBJECT.USERWITHAUTH)
PCR_READ_MAX = 8          # TPM2_PCR_Read returns at most 8 digests per call
NV_READ_CHUNK = 512
_TPM_RC_HANDLE = 0x08B    # TPM_RC_HANDLE (Part 2, 6.6.3), format-one base


class TPMDeviceError(Exception):
    """A TPM command failed: ``rc`` is the response code, the message its decoded text."""

    def __init__(self, operation, reason, rc=None):
        self.operation = operation
        self.rc = rc
        super().__init__('%s: %s' % (operation, reason))


class AK:
    """An attestation key as the agent stores it.

    ``public``: TPM2B_PUBLIC bytes; ``private``: opaque TPM2B_PRIVATE bytes, usable only
    by the TPM that created it; ``name``: its TPM Name.
    """

    def __init__(self, public, private):
        self.public = bytes(public)
        self.private = bytes(private)
        self.tpmt_public = structures.parse_tpm2b_public(self.public)
        self.name = self.tpmt_public.name

    def __repr__(self):
        return '<AK %s>' % self.name.hex()


def _is_missing_handle(exc):
    return isinstance(exc, TSS2_Exception) and (exc.rc & 0xBF) == _TPM_RC_HANDLE


class TPMDevice:
    """One TPM 2.0 reached over ``tcti`` (``name:config``), with an RSA or ECC EK."""

    def __init__(self, tcti, ek_type='rsa'):
        if ek_type not in EK_TEMPLATES:
            raise ValueError('ek_type must be rsa or ecc')
        name, _, config = tcti.partition(':')
        self._lock = threading.RLock()
        self.ek_type = ek_type
        self._ek = None
        self._ek_transient = False
        self._ek_public = None
        self._loaded = None          # (AK, ESYS_TR) of the one loaded AK
        try:
            self._ctx = ESAPI(TCTILdr(name, config or None))
        except (TSS2_Exception, RuntimeError) as e:
            raise TPMDeviceError('connect %s' % tcti, str(e), getattr(e, 'rc', None))

    # ----------------------------------------------------------------- plumbing

    def _call(self, operation, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TSS2_Exception as e:
            raise TPMDeviceError(operation, '%s (rc 0x%x)' % (e, e.rc), e.rc) from None

    def _ek_session(self, ek_public):
        """Authorization for using the EK (None means the empty password).

        The TCG default templates have adminWithPolicy and no userWithAuth: they need a
        PolicySecret(TPM_RH_ENDORSEMENT) session. swtpm's P-384 EK allows userWithAuth.
        """
        if ek_public.has_attributes(constants.TPMA_OBJECT_USERWITHAUTH):
            return None
        session = self._call('start PolicySecret session', self._ctx.start_auth_session,
                             ESYS_TR.NONE, ESYS_TR.NONE, TPM2_SE.POLICY,
                             tpm_types.TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL), TPM2_ALG.SHA256)
        try:
            self._call('PolicySecret(endorsement)', self._ctx.policy_secret, ESYS_TR.ENDORSEMENT,
                       session, b'', b'', b'', 0)
        except TPMDeviceError:
            self._ctx.flush_context(session)
            raise
        return session

    def _with_ek(self, operation, fn, **kwargs):
        """Run fn(ek_handle, session) with the EK's authorization, flushing the session."""
        ek = self._ensure_ek()
        session = self._ek_session(self._ek_public)
        try:
            return self._call(operation, fn, ek, session)
        finally:
            if session is not None:
                self._ctx.flush_context(session)

    def _ensure_ek(self):
        if self._ek is not None:
            return self._ek
        for handle in EK_PERSISTENT_HANDLES[self.ek_type]:
            try:
                ek = self._ctx.tr_from_tpmpublic(handle)
            except TSS2_Exception as e:
                if _is_missing_handle(e):
                    continue
                raise TPMDeviceError('read EK 0x%08x' % handle, str(e), e.rc) from None
            public, _, _ = self._call('ReadPublic EK', self._ctx.read_public, ek)
            self._ek, self._ek_public = ek, structures.parse_tpm2b_public(public.marshal())
            return ek
        _, template = create_ek_template(EK_TEMPLATES[self.ek_type], NVReadEK(self._ctx))
        ek, public, _, _, _ = self._call(
            'CreatePrimary EK', self._ctx.create_primary, tpm_types.TPM2B_SENSITIVE_CREATE(),
            template, ESYS_TR.ENDORSEMENT)
        self._ek, self._ek_transient = ek, True
        self._ek_public = structures.parse_tpm2b_public(public.marshal())
        return ek

    def _load(self, ak):
        """The ESYS handle of ``ak``, loading it (and flushing the previous one) if needed."""
        if self._loaded is not None and self._loaded[0] is ak:
            return self._loaded[1]
        self._unload()
        private, _ = tpm_types.TPM2B_PRIVATE.unmarshal(ak.private)
        public, _ = tpm_types.TPM2B_PUBLIC.unmarshal(ak.public)

        def load(ek, session):
            return self._ctx.load(ek, private, public,
                                  session1=session if session is not None else ESYS_TR.PASSWORD)
        handle = self._with_ek('Load AK', load)
        self._loaded = (ak, handle)
        return handle

    def _unload(self):
        if self._loaded is not None:
            _, handle = self._loaded
            self._loaded = None
            self._call('FlushContext AK', self._ctx.flush_context, handle)

    # ----------------------------------------------------------------- endorsement

    def ek_public(self):
        """The EK's TPM2B_PUBLIC bytes (persistent EK if provisioned, else the TCG template)."""
        with self._lock:
            self._ensure_ek()
            return self._ek_public.marshal_tpm2b_public()

    def ek_certificate(self):
        """The EK certificate (DER bytes) from its TCG NV index, or None when absent."""
        with self._lock:
            for index in EK_CERT_NV_INDEXES[self.ek_type]:
                try:
                    nv = self._ctx.tr_from_tpmpublic(index)
                except TSS2_Exception as e:
                    if _is_missing_handle(e):
                        continue
                    raise TPMDeviceError('read NV 0x%08x' % index, str(e), e.rc) from None
                nv_public, _ = self._call('NV_ReadPublic', self._ctx.nv_read_public, nv)
                size = nv_public.nvPublic.dataSize
                data = b''
                while len(data) < size:
                    chunk = self._call('NV_Read 0x%08x' % index, self._ctx.nv_read, nv,
                                       min(NV_READ_CHUNK, size - len(data)), len(data))
                    data += bytes(chunk)
                self._ctx.tr_close(nv)
                return data
            return None

    # ----------------------------------------------------------------- attestation keys

    def create_ak(self, key_type='ecc'):
        """Create an attestation key under the EK and return it, loaded, as an :class:`AK`.

        RSA-2048 with RSASSA-SHA256 or NIST P-256 with ECDSA-SHA256.
        """
        if key_type not in AK_TEMPLATES:
            raise ValueError('key_type must be rsa or ecc')
        template = tpm_types.TPM2B_PUBLIC.parse(AK_TEMPLATES[key_type],
                                                objectAttributes=AK_ATTRIBUTES)
        with self._lock:
            def create(ek, session):
                return self._ctx.create(ek, tpm_types.TPM2B_SENSITIVE_CREATE(), template,
                                        session1=session if session is not None
                                        else ESYS_TR.PASSWORD)
            private, public, _, _, _ = self._with_ek('Create AK', create)
            ak = AK(public.marshal(), private.marshal())
            self._load(ak)
            return ak

    def load_ak(self, public, private):
        """An :class:`AK` from its saved bytes; loaded into the TPM when first used."""
        try:
            return AK(public, private)
        except errors.TPMError as e:
            raise TPMDeviceError('load AK', 'invalid AK public area: %s' % e) from None

    def ak_tpm_name(self, ak):
        """The Name the TPM computes for the loaded ``ak`` (to cross-check ``ak.name``)."""
        with self._lock:
            return bytes(self._call('TR_GetName', self._ctx.tr_get_name, self._load(ak)))

    # ----------------------------------------------------------------- PCRs and quotes

    def pcr_extend(self, index, digests):
        """TPM2_PCR_Extend PCR ``index`` with ``digests`` = {bank: digest bytes}."""
        values = []
        for bank, digest in digests.items():
            values.append(tpm_types.TPMT_HA(
                hashAlg=constants.HASH_ALGORITHMS_BY_NAME[bank],
                digest=tpm_types.TPMU_HA(**{bank: bytes(digest)})))
        with self._lock:
            self._call('PCR_Extend %d' % index, self._ctx.pcr_extend, ESYS_TR.PCR0 + index,
                       tpm_types.TPML_DIGEST_VALUES(values))

    def pcr_read(self, selection):
        """{bank: {index: digest}} for ``selection`` = {bank: [index]} (8 PCRs per call)."""
        out = {}
        with self._lock:
            for bank, indexes in structures.normalize_selection(selection):
                values = out.setdefault(bank, {})
                for start in range(0, len(indexes), PCR_READ_MAX):
                    chunk = [(bank, indexes[start:start + PCR_READ_MAX])]
                    tpml, _ = tpm_types.TPML_PCR_SELECTION.unmarshal(
                        structures.marshal_tpml_pcr_selection(chunk))
                    _, read_sel, digests = self._call('PCR_Read', self._ctx.pcr_read, tpml)
                    read = structures.parse_tpml_pcr_selection(read_sel.marshal())
                    got = [(b, i) for b, idx in read for i in idx]
                    if got != [(bank, i) for i in chunk[0][1]] or len(digests) != len(got):
                        raise TPMDeviceError('PCR_Read', 'the TPM returned %s for %s: is the %s '
                                             'bank allocated?' % (read, chunk, bank))
                    for (_, i), digest in zip(got, digests):
                        values[i] = bytes(digest)
        return out

    def quote(self, ak, nonce, selection):
        """TPM2_Quote over ``selection`` with qualifying data ``nonce``.

        Returns (TPMS_ATTEST bytes, TPMT_SIGNATURE bytes, {bank: {index: digest}}) read
        right after the quote; the verifier rejects them if a PCR changed in between.
        """
        nonce = bytes(nonce)
        if len(nonce) > structures.MAX_DIGEST_BUFFER:
            raise TPMDeviceError('Quote', 'nonce of %d bytes: at most %d fit TPM2B_DATA'
                                 % (len(nonce), structures.MAX_DIGEST_BUFFER))
        tpml, _ = tpm_types.TPML_PCR_SELECTION.unmarshal(
            structures.marshal_tpml_pcr_selection(selection))
        with self._lock:
            handle = self._load(ak)
            attest, signature = self._call('Quote', self._ctx.quote, handle, tpml,
                                           tpm_types.TPM2B_DATA(nonce))
            values = self.pcr_read(selection)
        return attest.marshal()[2:], signature.marshal(), values

    def activate_credential(self, ak, id_object, encrypted_secret):
        """TPM2_ActivateCredential: the secret a verifier bound to ``ak``'s Name and the EK.

        ``id_object`` / ``encrypted_secret`` are TPM2B_ID_OBJECT / TPM2B_ENCRYPTED_SECRET bytes.
        """
        try:
            blob, _ = tpm_types.TPM2B_ID_OBJECT.unmarshal(bytes(id_object))
            secret, _ = tpm_types.TPM2B_ENCRYPTED_SECRET.unmarshal(bytes(encrypted_secret))
        except Exception as e:  # pytss raises assorted types on bad bytes
            raise TPMDeviceError('ActivateCredential', 'malformed credential: %s' % e) from None
        with self._lock:
            handle = self._load(ak)

            def activate(ek, session):
                return self._ctx.activate_credential(
                    handle, ek, blob, secret, session1=ESYS_TR.PASSWORD,
                    session2=session if session is not None else ESYS_TR.PASSWORD)
            return bytes(self._with_ek('ActivateCredential', activate))

    def close(self):
        """Flush what this context loaded and close it (idempotent)."""
        with self._lock:
            if self._ctx is None:
                return
            try:
                self._unload()
                if self._ek is not None and self._ek_transient:
                    self._ctx.flush_context(self._ek)
            except (TSS2_Exception, TPMDeviceError):
                pass    # the TPM may be gone (rebooted or stopped); closing must not fail
            finally:
                self._ek = None
                self._ctx.close()
                self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
