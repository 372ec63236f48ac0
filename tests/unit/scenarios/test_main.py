"""The command: --dry-run lists steps and outcomes, --render re-makes a run's report from its
observation file, unusable input exits 2 with the reason."""
from tclouds_openstack.scenarios import __main__ as main_mod
from tests.unit.scenarios import sample


def test_dry_run_lists_steps_and_outcomes(capsys):
    assert main_mod.main(['lighting', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '[storage-faults] One storage cloud goes away, another serves corrupted data' in out
    assert '[answers] The control service answered every request with correct state' in out


def test_render_without_the_browser_check_decides_on_the_outcomes(tmp_path, capsys):
    path = tmp_path / 'observations.json'
    path.write_text(sample.healthcare().to_json())
    assert main_mod.main(['healthcare', '--render', str(path), '--no-browser-check']) == 0
    assert (tmp_path / 'report.html').exists()
    assert 'ok   auditor' in capsys.readouterr().out


def test_render_of_a_failed_run_fails(tmp_path):
    obs = sample.healthcare()
    obs.data['keys'] = []
    path = tmp_path / 'observations.json'
    path.write_text(obs.to_json())
    assert main_mod.main(['healthcare', '--render', str(path), '--no-browser-check']) == 1


def test_unusable_input(tmp_path, capsys):
    assert main_mod.main(['healthcare', '--render', str(tmp_path / 'absent.json')]) == 2
    assert 'No such file' in capsys.readouterr().err
    (tmp_path / 'bad.json').write_text('{"format": "x"}')
    assert main_mod.main(['healthcare', '--render', str(tmp_path / 'bad.json')]) == 2
