"""Agent API 1.2: an answer cast to the worker's queue completes only the request it names.

The matching of :class:`rpcapi.AnswerWaiter` without a broker (the queue is not started):
an answer completes the awaiting request of its id only when it names that request's host;
unknown, repeated, late and malformed answers and answers naming another host are dropped
and counted, and never complete another request. The bus itself: the functional test
``tests/functional/attestation/test_answer_casts.py``.
"""
import pytest

from tclouds_openstack.attestation import rpcapi
from tclouds_openstack.attestation import simfleet


@pytest.fixture
def waiter():
    conf = simfleet.make_conf('sqlite://')
    return rpcapi.AnswerWaiter(conf, 'answers', 'worker-1')


def cast(request_id, host, **extra):
    """The message an agent's cast of quote_answer decodes to."""
    answer = {'host': host, 'attest': 'YQ==', 'agent_api': '1.2'}
    answer.update(extra)
    return {'method': 'quote_answer', 'args': {'request_id': request_id, 'answer': answer},
            'version': '1.0'}


def test_an_answer_completes_its_own_request_once(waiter):
    rid_a, fut_a = waiter.expect('compute-a')
    rid_b, fut_b = waiter.expect('compute-b')
    waiter._received(cast(rid_a, 'compute-a'))
    assert fut_a.result(0)['host'] == 'compute-a'
    assert not fut_b.done()
    # the same answer again (a duplicate on the bus): dropped, completes nothing
    waiter._received(cast(rid_a, 'compute-a', attest='Yg=='))
    assert fut_a.result(0)['attest'] == 'YQ=='
    assert not fut_b.done()
    assert waiter.dropped == {'unknown': 1}


def test_an_answer_naming_another_host_is_dropped_and_the_request_still_awaits(waiter):
    rid_a, fut_a = waiter.expect('compute-a')
    rid_b, fut_b = waiter.expect('compute-b')
    # B's answer carrying A's request id, and an answer naming no host
    waiter._received(cast(rid_a, 'compute-b'))
    waiter._received(cast(rid_a, None))
    assert not fut_a.done() and not fut_b.done()
    assert waiter.dropped == {'host': 2}
    # A's own answer still completes A's request
    waiter._received(cast(rid_a, 'compute-a'))
    assert fut_a.result(0)['host'] == 'compute-a'
    assert not fut_b.done()


def test_unknown_and_late_answers_are_dropped(waiter):
    rid, fut = waiter.expect('compute-a')
    waiter._received(cast('0' * 32, 'compute-a'))      # an id never sent
    assert not fut.done()
    waiter.forget(rid)                                  # the request timed out
    waiter._received(cast(rid, 'compute-a'))            # its answer comes late
    assert not fut.done()
    # the host's next request is not completed by the late answer either
    rid2, fut2 = waiter.expect('compute-a')
    assert rid2 != rid and not fut2.done()
    assert waiter.dropped == {'unknown': 2}


@pytest.mark.parametrize('message', [
    {'method': 'get_quote', 'args': {}},
    {'method': 'quote_answer', 'args': None},
    {'method': 'quote_answer', 'args': {'request_id': 'x', 'answer': {}}},
    {'method': 'quote_answer', 'args': {'request_id': 'A' * 32, 'answer': {}}},
    {'method': 'quote_answer', 'args': {'request_id': 7, 'answer': {}}},
    {'method': 'quote_answer', 'args': {'answer': {'host': 'compute-a'}}},
])
def test_malformed_answers_are_dropped(waiter, message):
    rid, fut = waiter.expect('compute-a')
    if isinstance(message.get('args'), dict) and 'request_id' not in message['args']:
        message['args']['request_id'] = None
    waiter._received(message)
    # with the awaited id but a non-object answer
    waiter._received({'method': 'quote_answer', 'args': {'request_id': rid, 'answer': 'x'}})
    assert not fut.done()
    assert waiter.dropped == {'malformed': 2}


@pytest.mark.parametrize('said, serves', [
    ('1.2', True), ('1.3', True), ('1.1', False), ('2.2', False), ('1.2.0', False),
    (' 1.2', False), ('١.٢', False), (12, False), (None, False)])
def test_only_an_answer_saying_1_2_makes_the_worker_cast(said, serves):
    assert rpcapi.speaks({'agent_api': said}, rpcapi.CAST_ANSWER_VERSION) is serves


def test_reply_names_are_names_not_topics():
    assert rpcapi.is_reply_to('worker-1.0a1b2c3d4e5f')
    for bad in ('', '.x', 'a b', 'a/b', 'x' * 129, 'a\n', None, 3):
        assert not rpcapi.is_reply_to(bad)
