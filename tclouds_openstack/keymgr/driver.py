"""castellan driver ``tclouds`` ([key_manager] backend = tclouds): attestation-gated keys.

Controllers (Cinder, the key release API) use the wrapped store directly, so creation and
deletion of volume keys by Cinder behave exactly as with any castellan backend. Compute
hosts ([tclouds_key_manager] role = compute) fetch keys only through the key release API,
one volume at a time (:meth:`TcloudsKeyManager.get_volume_key`, called by the tclouds
encryptor): it releases a volume's key only to the enrolled, attested host Cinder shows the
volume attached to (see ``release.py``). castellan's ``get(context, key_id)`` names no
volume, so a compute host refuses it with the reason.

Top-level imports stay light (castellan loads every driver while ``nova.conf`` imports):
no oslo.messaging, no keystoneauth, no sqlite here; those load on first use.
"""
import os
import uuid

from castellan.common import exception as castellan_exc
from castellan.common.objects import opaque_data
from castellan.common.objects import passphrase
from castellan.common.objects import symmetric_key
from castellan.key_manager import key_manager

from tclouds_openstack.conf import attestation as conf_attestation
from tclouds_openstack.conf import keymgr as conf_keymgr

_KINDS = {
    'symmetric': symmetric_key.SymmetricKey,
    'passphrase': passphrase.Passphrase,
    'opaque': opaque_data.OpaqueData,
}


def register_opts(conf):
    """Register our groups on the service's conf (nova/cinder), once."""
    for module, group in ((conf_keymgr, 'tclouds_key_manager'),
                          (conf_attestation, 'attestation')):
        try:
            getattr(conf, group)
        except Exception:     # oslo.config NoSuchOptError: not registered yet
            module.register_opts(conf)


def managed_object(kind, secret, algorithm=None, bit_length=None, name=None, created=None,
                   consumers=None, secret_id=None):
    """Build the castellan object of ``kind`` (``_KINDS``)."""
    if kind == 'symmetric':
        return symmetric_key.SymmetricKey(algorithm, bit_length, secret, name=name,
                                          created=created, id=secret_id,
                                          consumers=consumers or [])
    return _KINDS[kind](secret, name=name, created=created, id=secret_id,
                        consumers=consumers or [])


def kind_of(obj):
    for kind, cls in _KINDS.items():
        if isinstance(obj, cls):
            return kind
    raise castellan_exc.KeyManagerError('the tclouds key store keeps symmetric keys, '
                                        'passphrases and opaque data, not %s'
                                        % type(obj).__name__)


class LocalKeyManager(key_manager.KeyManager):
    """castellan interface over the embedded encrypted store (``store.LocalKeyStore``).

    Objects of other projects are invisible (ManagedObjectNotFoundError), as castellan's
    contract asks; an internal context without project (the key release API after its
    attestation check) sees every object.
    """

    def __init__(self, configuration):
        register_opts(configuration)
        self.conf = configuration
        self._store = None

    @property
    def keystore(self):
        if self._store is None:
            from tclouds_openstack.keymgr import store as local_store
            group = self.conf.tclouds_key_manager
            try:
                master = local_store.load_master_key(group.master_key_file)
                self._store = local_store.LocalKeyStore(group.local_store_path, master)
            except local_store.KeyStoreError as exc:
                raise castellan_exc.KeyManagerError(str(exc))
        return self._store

    @staticmethod
    def _check(context):
        if context is None:
            raise castellan_exc.Forbidden('a request context is required')

    def _entry(self, context, managed_object_id, metadata_only=False):
        from tclouds_openstack.keymgr import store as local_store
        self._check(context)
        try:
            entry = self.keystore.get(managed_object_id, metadata_only=metadata_only)
        except local_store.SecretNotFound:
            raise castellan_exc.ManagedObjectNotFoundError(uuid=managed_object_id)
        except local_store.KeyStoreError as exc:
            raise castellan_exc.KeyManagerError(str(exc))
        project = getattr(context, 'project_id', None)
        if project and entry['project_id'] and project != entry['project_id']:
            raise castellan_exc.ManagedObjectNotFoundError(uuid=managed_object_id)
        return entry

    def create_key(self, context, algorithm='AES', length=256, name=None, **kwargs):
        self._check(context)
        if length % 8 or not 0 < length <= 4096:
            raise castellan_exc.KeyManagerError('key length %r bits is not supported' % length)
        secret_id = str(uuid.uuid4())
        self.keystore.put(secret_id, 'symmetric', os.urandom(length // 8),
                          project_id=getattr(context, 'project_id', None),
                          algorithm=algorithm, bit_length=length, name=name)
        return secret_id

    def create_key_pair(self, context, algorithm, length, expiration=None, name=None):
        raise NotImplementedError('the tclouds key store does not generate key pairs')

    def store(self, context, managed_object, expiration=None, **kwargs):
        self._check(context)
        kind = kind_of(managed_object)
        secret_id = str(uuid.uuid4())
        self.keystore.put(secret_id, kind, managed_object.get_encoded(),
                          project_id=getattr(context, 'project_id', None),
                          algorithm=getattr(managed_object, 'algorithm', None),
                          bit_length=getattr(managed_object, 'bit_length', None),
                          name=managed_object.name)
        return secret_id

    def get(self, context, managed_object_id, metadata_only=False):
        entry = self._entry(context, managed_object_id, metadata_only)
        return managed_object(entry['kind'], entry.get('secret'), entry['algorithm'],
                              entry['bit_length'], entry['name'], int(entry['created']),
                              entry['consumers'], managed_object_id)

    def list(self, context, object_type=None, metadata_only=False):
        self._check(context)
        objects = [self.get(context, i, metadata_only)
                   for i in self.keystore.list(getattr(context, 'project_id', None))]
        return [o for o in objects if object_type is None or isinstance(o, object_type)]

    def delete(self, context, managed_object_id, force=False):
        self._entry(context, managed_object_id, metadata_only=True)
        from tclouds_openstack.keymgr import store as local_store
        try:
            self.keystore.delete(managed_object_id)
        except local_store.SecretNotFound:
            raise castellan_exc.ManagedObjectNotFoundError(uuid=managed_object_id)

    def add_consumer(self, context, managed_object_id, consumer_data):
        self._entry(context, managed_object_id, metadata_only=True)
        self.keystore.update_consumers(
            managed_object_id, lambda c: c + [consumer_data] if consumer_data not in c else c)

    def remove_consumer(self, context, managed_object_id, consumer_data):
        self._entry(context, managed_object_id, metadata_only=True)
        self.keystore.update_consumers(managed_object_id,
                                       lambda c: [x for x in c if x != consumer_data])


class TcloudsKeyManager(key_manager.KeyManager):
    """The ``tclouds`` castellan driver: wraps a key store, gates releases to hosts."""

    def __init__(self, configuration):
        register_opts(configuration)
        self.conf = configuration
        self._wrapped = None
        self._client = None

    @property
    def group(self):
        return self.conf.tclouds_key_manager

    @property
    def wrapped(self):
        """The real key store: the local store or another castellan driver by name."""
        if self._wrapped is None:
            name = self.group.wrapped_backend
            if name == 'local':
                self._wrapped = LocalKeyManager(self.conf)
            elif name == 'tclouds':
                raise castellan_exc.KeyManagerError('[tclouds_key_manager] wrapped_backend '
                                                    'cannot be tclouds itself')
            else:
                from stevedore import driver
                self._wrapped = driver.DriverManager(
                    'castellan.drivers', name, invoke_on_load=True,
                    invoke_args=(self.conf,)).driver
        return self._wrapped

    @property
    def client(self):
        if self._client is None:
            from tclouds_openstack.keymgr import client
            self._client = client.from_conf(self.conf)
        return self._client

    def _controller_only(self, operation):
        if self.group.role != 'controller':
            raise castellan_exc.KeyManagerError(
                '%s is not allowed from a compute host ([tclouds_key_manager] role = '
                'compute): compute hosts only receive keys through the key release API'
                % operation)

    def create_key(self, context, algorithm='AES', length=256, name=None, **kwargs):
        self._controller_only('create_key')
        return self.wrapped.create_key(context, algorithm=algorithm, length=length,
                                       name=name, **kwargs)

    def create_key_pair(self, context, algorithm, length, expiration=None, name=None):
        self._controller_only('create_key_pair')
        return self.wrapped.create_key_pair(context, algorithm, length,
                                            expiration=expiration, name=name)

    def store(self, context, managed_object, expiration=None, **kwargs):
        self._controller_only('store')
        return self.wrapped.store(context, managed_object, expiration=expiration, **kwargs)

    def get(self, context, managed_object_id, metadata_only=False):
        if self.group.role == 'controller':
            return self.wrapped.get(context, managed_object_id, metadata_only=metadata_only)
        raise castellan_exc.KeyManagerError(
            'key %s: a compute host receives a volume key only for a volume attached to it, '
            'and castellan get() does not name the volume; use the tclouds encryptor '
            '(provider tclouds_openstack.blockstore.encryptor.TcloudsEncryptor), which asks '
            'get_volume_key()' % managed_object_id)

    def get_volume_key(self, context, volume_id, key_id):
        """The key ``key_id`` of Cinder volume ``volume_id``, attached to this host.

        On a compute host the key release API decides (Forbidden with its reason); on a
        controller this is ``get``.
        """
        if self.group.role == 'controller':
            return self.wrapped.get(context, key_id)
        if context is None:
            raise castellan_exc.Forbidden('a request context is required')
        if not volume_id:
            raise castellan_exc.KeyManagerError('key %s: the volume it belongs to is not '
                                                'known, so the key cannot be asked for'
                                                % key_id)
        return self.client.release_volume_key(volume_id, key_id)

    def list(self, context, object_type=None, metadata_only=False):
        self._controller_only('list')
        return self.wrapped.list(context, object_type=object_type,
                                 metadata_only=metadata_only)

    def delete(self, context, managed_object_id, force=False):
        self._controller_only('delete')
        return self.wrapped.delete(context, managed_object_id, force=force)

    def add_consumer(self, context, managed_object_id, consumer_data):
        self._controller_only('add_consumer')
        return self.wrapped.add_consumer(context, managed_object_id, consumer_data)

    def remove_consumer(self, context, managed_object_id, consumer_data):
        self._controller_only('remove_consumer')
        return self.wrapped.remove_consumer(context, managed_object_id, consumer_data)
