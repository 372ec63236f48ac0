"""Where verdicts come from: stevedore namespace ``tclouds.attestation.backends``.

``tclouds`` is this project's attestation service; ``keylime`` reads an existing Keylime
verifier. Everything that needs a verdict (Nova filters, the key manager, the demo) calls
:func:`get_backend` and then :meth:`AttestationBackend.get_verdicts`.
"""
from stevedore import driver

NAMESPACE = 'tclouds.attestation.backends'


def get_backend(conf, name=None):
    """Load the backend named by ``[attestation] backend`` (or ``name``), built with ``conf``."""
    name = name or conf.attestation.backend
    return driver.DriverManager(NAMESPACE, name, invoke_on_load=True,
                                invoke_args=(conf,)).driver
