"""Format marks: only a well-formed answer of the key service is believed (issue 12 pt 8).

A key manager that keeps marks through ``format_mark``/``claim_format_mark`` (the interface
marks.py accepts from any key manager) answers here with what a broken or hostile key
service could send; none of it may read as "never formatted" or "claimed".
"""
import pytest

from tclouds_openstack.blockstore import marks


class _KeyManager:
    def __init__(self, mark, claimed):
        self.mark, self.claimed = mark, claimed

    def format_mark(self, context, volume_id):
        return self.mark

    def claim_format_mark(self, context, volume_id, blockstore_uuid, format_version):
        return self.claimed


@pytest.mark.parametrize('answer', ['', 'vol', [], ['x'], 0, 1, True, {}, {'host': 'h'},
                                    {'blockstore_uuid': 5}, {'blockstore_uuid': ''},
                                    {'blockstore_uuid': None}])
def test_a_malformed_mark_is_unknown(answer):
    with pytest.raises(marks.Unknown) as exc:
        marks.FormatMarks(_KeyManager(answer, False), None, 'vol-1').get()
    assert 'malformed format mark for volume vol-1' in str(exc.value)


@pytest.mark.parametrize('answer', [None, {'claimed': False}, 'false', 1, 0, [], {'ok': 1}])
def test_only_true_or_false_is_a_claim_answer(answer):
    with pytest.raises(marks.Unknown) as exc:
        marks.FormatMarks(_KeyManager(None, answer), None, 'vol-1').claim('u', 2)
    assert 'malformed answer to the format mark claim of volume vol-1' in str(exc.value)


def test_well_formed_answers():
    ok = marks.FormatMarks(_KeyManager({'blockstore_uuid': 'u', 'host': 'h'}, True), None,
                           'vol-1')
    assert ok.get()['blockstore_uuid'] == 'u' and ok.claim('u', 2) is True
    new = marks.FormatMarks(_KeyManager(None, False), None, 'vol-1')
    assert new.get() is None and new.claim('u', 2) is False
