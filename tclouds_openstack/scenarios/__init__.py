"""The two TClouds scenarios on a deployed cloud (``tools/scenario.sh healthcare|lighting``).

:mod:`.core` (pure) lists each scenario's steps and expected outcomes and decides, from
the observations a run recorded (JSON), which outcomes were observed; :mod:`.report`
(pure) renders a run's HTML report with its pictures; :mod:`.browser` checks that report
in headless Chromium; :mod:`.cloud` drives the cloud (the ``openstack`` CLI, Swift, the
tclouds APIs) and :mod:`.healthcare` / :mod:`.lighting` are the flows.
"""
