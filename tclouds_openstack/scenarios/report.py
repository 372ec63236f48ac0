"""The HTML report of a scenario run (pure): outcomes, steps and three pictures.

Pictures are SVG drawn here (no script or style from the network):

* ``#trust-timeline``: the trust state of each compute host over the run (one track per
  host, a segment per verdict sampled, the compromise and the compute service disabled
  marked);
* ``#jurisdiction-map``: a tile map of Europe and beyond; the allowed countries shaded;
  for each country where something landed, an inset with its compute hosts (coloured by
  their last trust state) and storage clouds, and the run's servers, volumes and objects
  joined to where they landed;
* ``#checkpoint-chain``: the signed checkpoints seen during the run (signature checked,
  each one proved to extend the previous one) and, along the log, the records the
  project's report proves (one tick per line: what the auditor verified).

A small inline script (ours) marks every element carrying ``data-check`` with
``data-laid-out="yes"`` when the browser gave it a non-empty box, and the body with
``data-rendered``: :mod:`.browser` checks those in headless Chromium.
:func:`expected_elements` lists what a run's report must show.
"""
import datetime
import html
import json

from tclouds_openstack.scenarios import core

STATUS_COLOURS = {'trusted': '#2e8b57', 'untrusted': '#c0392b', 'unknown': '#999999',
                  'stale': '#e0a030', 'disabled': '#c0392b', 'enabled': '#2e8b57'}
KIND_COLOURS = {'placement': '#2c6fbb', 'verdict': '#2e8b57', 'key': '#8e44ad',
                'refusal': '#c0392b', 'integrity': '#d35400', 'host-action': '#7f8c8d',
                'trust-action': '#7f8c8d', 'note': '#16a085', 'sealed': '#34495e'}
# A tile map: (column, row) of each country (roughly where it is).
TILES = {
    'IS': (0, 0), 'NO': (3, 0), 'SE': (4, 0), 'FI': (5, 0),
    'IE': (0, 1), 'GB': (1, 1), 'DK': (3, 1), 'EE': (5, 1),
    'BE': (1, 2), 'NL': (2, 2), 'DE': (3, 2), 'PL': (4, 2), 'LV': (5, 2),
    'FR': (1, 3), 'LU': (2, 3), 'CZ': (3, 3), 'SK': (4, 3), 'LT': (5, 3),
    'PT': (0, 4), 'ES': (1, 4), 'CH': (2, 4), 'AT': (3, 4), 'HU': (4, 4), 'RO': (5, 4),
    'IT': (2, 5), 'SI': (3, 5), 'HR': (4, 5), 'BG': (5, 5),
    'US': (0, 6), 'MT': (2, 6), 'GR': (4, 6), 'CY': (5, 6),
}
TILE = 52


def _e(text):
    return html.escape('' if text is None else str(text), quote=True)


def _attrs(**attrs):
    return ''.join(' %s="%s"' % (k.rstrip('_').replace('_', '-'), _e(v))
                   for k, v in attrs.items() if v is not None)


def _when(ts):
    if ts is None:
        return '-'
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        '%Y-%m-%d %H:%M:%S UTC')


def _hosts(obs):
    hosts = list(obs['jurisdictions']['hosts'])
    for item in obs['host_states'] + obs['services']:
        if item['host'] not in hosts:
            hosts.append(item['host'])
    return hosts


def _span(obs):
    times = [obs['started']] + [i['time'] for name in core.Observations.LISTS
                                for i in obs[name] if i.get('time') is not None]
    start = min(times)
    end = max(times + [obs['finished'] or start])
    return start, max(end, start + 1)


# --------------------------------------------------------------------------- pictures
def trust_timeline(obs):
    hosts = _hosts(obs)
    start, end = _span(obs)
    left, width, track = 150, 820, 34
    height = 50 + track * max(len(hosts), 1) + 40
    scale = width / (end - start)

    def x(t):
        return left + (t - start) * scale
    out = ['<svg id="trust-timeline" data-check="trust-timeline" xmlns="http://www.w3.org/2000/'
           'svg" width="%d" height="%d" role="img" aria-label="Trust state of each compute '
           'host over time">' % (left + width + 30, height)]
    out.append('<text x="%d" y="18" class="caption">Trust state of each compute host over the '
               'run (%s to %s)</text>' % (left, _e(_when(start)), _e(_when(end))))
    for row, host in enumerate(hosts):
        y = 34 + row * track
        out.append('<g class="host-track" data-check="host-%s"%s>' % (_e(host), _attrs(
            data_host=host)))
        out.append('<text x="%d" y="%d" text-anchor="end" class="label">%s (%s)</text>' % (
            left - 8, y + 16, _e(host), _e(obs['jurisdictions']['hosts'].get(host) or '?')))
        out.append('<rect x="%d" y="%d" width="%d" height="22" fill="#f1f1f1"/>' % (
            left, y, width))
        samples = sorted((s for s in obs['host_states'] if s['host'] == host),
                         key=lambda s: s['time'])
        for i, s in enumerate(samples):
            t1 = samples[i + 1]['time'] if i + 1 < len(samples) else end
            w = max(x(t1) - x(s['time']), 2)
            out.append('<rect class="trust-segment" x="%.1f" y="%d" width="%.1f" height="22"'
                       ' fill="%s"%s><title>%s %s at %s%s</title></rect>' % (
                           x(s['time']), y, w, STATUS_COLOURS.get(s['status'], '#999'),
                           _attrs(data_status=s['status']), _e(host), _e(s['status']),
                           _e(_when(s['time'])),
                           _e(': %s' % s['reason'] if s.get('reason') else '')))
        for s in obs['services']:
            if s['host'] == host and s['status'] == 'disabled':
                out.append('<g class="service-disabled"%s><path d="M%.1f %d l6 -8 l6 8 z" '
                           'fill="#000"/><title>nova-compute disabled at %s: %s</title></g>' % (
                               _attrs(data_host=host), x(s['time']) - 6, y + 30,
                               _e(_when(s['time'])), _e(s.get('reason'))))
                break
        out.append('</g>')
    at = obs['facts'].get('compromised_at')
    if at is not None:
        out.append('<g class="event" data-event="compromise" data-check="compromise-mark">'
                   '<line x1="%.1f" x2="%.1f" y1="28" y2="%d" stroke="#000" '
                   'stroke-dasharray="4 3"/><text x="%.1f" y="%d" class="small">%s '
                   'compromised</text></g>' % (x(at), x(at), height - 30, x(at) + 4,
                                               height - 18,
                                               _e(obs['facts'].get('compromised_host'))))
    legend_y = height - 8
    lx = left
    for status in ('trusted', 'untrusted', 'unknown', 'stale'):
        out.append('<rect x="%d" y="%d" width="12" height="10" fill="%s"/><text x="%d" y="%d" '
                   'class="small">%s</text>' % (lx, legend_y - 9, STATUS_COLOURS[status],
                                                lx + 16, legend_y, status))
        lx += 95
    out.append('<path d="M%d %d l6 -8 l6 8 z" fill="#000"/><text x="%d" y="%d" class="small">'
               'compute service disabled</text>' % (lx, legend_y, lx + 16, legend_y))
    out.append('</svg>')
    return '\n'.join(out)


def _sites(obs):
    """country -> [(kind, name, status)] of every known host and cloud."""
    sites = {}
    last = {}
    for s in sorted(obs['host_states'], key=lambda s: s['time']):
        last[s['host']] = s['status']
    for host, cc in obs['jurisdictions']['hosts'].items():
        sites.setdefault(cc or '??', []).append(('host', host, last.get(host, 'unknown')))
    for cloud, cc in obs['jurisdictions']['clouds'].items():
        sites.setdefault(cc or '??', []).append(('cloud', cloud, None))
    for p in obs['placements']:
        for c in p.get('clouds') or ():
            cc = c.get('country') or '??'
            if ('cloud', c.get('cloud'), None) not in sites.setdefault(cc, []):
                sites[cc].append(('cloud', c.get('cloud'), None))
        if p.get('host') and p['host'] not in obs['jurisdictions']['hosts']:
            cc = p.get('jurisdiction') or '??'
            if not any(s[1] == p['host'] for s in sites.setdefault(cc, [])):
                sites[cc].append(('host', p['host'], last.get(p['host'], 'unknown')))
    return sites


def jurisdiction_map(obs):
    allowed = core.effective_countries(obs['requirement'].get('jurisdictions'))
    sites = _sites(obs)
    tiles = dict(TILES)
    extra_col = 0
    for cc in sorted(sites):
        if cc not in tiles:
            tiles[cc] = (extra_col, 7)
            extra_col += 1
    map_w = 7 * TILE + 20
    insets = sorted(sites)
    # inset geometry: one box per country, sites in a row, resources under them
    resources = [p for p in obs['placements']]
    inset_x, inset_w = map_w + 40, 640
    site_w = 150
    boxes = {}
    y = 30
    for cc in insets:
        n = len(sites[cc])
        rows = (n + 3) // 4
        h = 40 + rows * 120
        boxes[cc] = (y, h)
        y += h + 16
    height = max(8 * TILE + 60, y + 10)
    width = inset_x + inset_w + 20
    out = ['<svg id="jurisdiction-map" data-check="jurisdiction-map" xmlns="http://www.w3.org/'
           '2000/svg" width="%d" height="%d" role="img" aria-label="Where each server, volume '
           'and object landed">' % (width, height)]
    out.append('<text x="10" y="18" class="caption">Jurisdictions: allowed for the project '
               '%s (shaded)</text>' % _e(','.join(obs['requirement'].get('jurisdictions') or [])
                                         or 'not restricted'))
    for cc, (col, row) in sorted(tiles.items()):
        fill = '#cfe3f7' if cc in allowed else '#eeeeee'
        stroke = '#1f5f9f' if cc in sites else '#bbbbbb'
        out.append('<g class="country"%s><rect x="%d" y="%d" width="%d" height="%d" rx="4" '
                   'fill="%s" stroke="%s" stroke-width="%d"/><text x="%d" y="%d" '
                   'class="tile">%s</text></g>' % (
                       _attrs(data_country=cc, data_allowed=str(cc in allowed).lower()),
                       10 + col * TILE, 30 + row * TILE, TILE - 4, TILE - 4, fill, stroke,
                       3 if cc in sites else 1, 10 + col * TILE + (TILE - 4) // 2,
                       30 + row * TILE + TILE // 2 + 2, _e(cc)))
    anchor = {}
    for cc in insets:
        by, bh = boxes[cc]
        col, row = tiles[cc]
        tx, ty = 10 + col * TILE + TILE - 4, 30 + row * TILE + (TILE - 4) // 2
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1f5f9f" '
                   'stroke-dasharray="3 3"/>' % (tx, ty, inset_x, by + 16))
        out.append('<g class="jurisdiction-inset" data-check="inset-%s"%s>' % (
            _e(cc), _attrs(data_country=cc)))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" rx="6" fill="%s" '
                   'stroke="#1f5f9f"/>' % (inset_x, by, inset_w, bh,
                                           '#f3f8fd' if cc in allowed else '#fbeeee'))
        out.append('<text x="%d" y="%d" class="label">%s%s</text>' % (
            inset_x + 10, by + 20, _e(cc), ' (allowed)' if cc in allowed else
            ' (NOT allowed for the project)'))
        for i, (kind, name, status) in enumerate(sites[cc]):
            sx = inset_x + 16 + (i % 4) * site_w
            sy = by + 34 + (i // 4) * 120
            anchor[(kind, name)] = (sx + 60, sy + 30)
            colour = STATUS_COLOURS.get(status, '#555') if kind == 'host' else '#34495e'
            shape = ('<rect x="%d" y="%d" width="120" height="30" rx="3" fill="%s"/>'
                     % (sx, sy, colour) if kind == 'host' else
                     '<ellipse cx="%d" cy="%d" rx="60" ry="15" fill="%s"/>'
                     % (sx + 60, sy + 15, colour))
            out.append('<g class="site" data-check="site-%s-%s"%s>%s<text x="%d" y="%d" '
                       'class="onfill">%s %s</text><title>%s %s in %s%s</title></g>' % (
                           _e(kind), _e(name), _attrs(data_kind=kind, data_site=name,
                                                      data_status=status),
                           shape, sx + 60, sy + 19, 'host' if kind == 'host' else 'cloud',
                           _e(name), kind, _e(name), _e(cc),
                           _e(', last verdict %s' % status if status else '')))
        out.append('</g>')
    # resources under the site(s) they landed on
    stacked = {}
    for p in resources:
        targets = []
        if p['kind'] in ('server', 'volume') and p.get('host'):
            targets = [('host', p['host'])]
        elif p.get('clouds'):
            targets = [('cloud', c.get('cloud')) for c in p['clouds']]
        targets = [t for t in targets if t in anchor]
        if not targets:
            continue
        first = anchor[targets[0]]
        n = stacked.get(targets[0], 0)
        stacked[targets[0]] = n + 1
        rx, ry = first[0] - 60 + (n % 3) * 42, first[1] + 14 + (n // 3) * 24
        glyph = {'server': 'S', 'volume': 'V', 'object': 'O'}.get(p['kind'], '?')
        fill = {'server': '#2c6fbb', 'volume': '#8e44ad', 'object': '#16a085'}.get(
            p['kind'], '#555')
        links = ''.join('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1"/>'
                        % (rx + 16, ry + 9, anchor[t][0], anchor[t][1], fill)
                        for t in targets)
        out.append('<g class="resource" data-check="resource-%s-%s"%s>%s<rect x="%d" y="%d" '
                   'width="36" height="18" rx="9" fill="%s"/><text x="%d" y="%d" '
                   'class="onfill">%s</text><title>%s %s%s -> %s</title></g>' % (
                       _e(p['kind']), _e(p['id']), _attrs(data_kind=p['kind'], data_id=p['id']),
                       links, rx, ry, fill, rx + 18, ry + 13, glyph, _e(p['kind']),
                       _e(p.get('name') or p['id']), _e(' (%s)' % p['id'] if p.get('name')
                                                        else ''),
                       _e(', '.join('%s %s' % t for t in targets))))
    ly = height - 12
    out.append('<text x="10" y="%d" class="small">S server, V volume (on the host it is '
               'attached to), O object (joined to the clouds of its fragments); host colour: '
               'its last trust verdict</text>' % ly)
    out.append('</svg>')
    return '\n'.join(out)


def checkpoint_chain(obs):
    cps = sorted(obs['checkpoints'], key=lambda c: c['time'])
    rep = obs['report'] or {}
    lines = rep.get('line_indexes') or []
    size = max([c['tree_size'] for c in cps] + [rep.get('tree_size') or 0] + [1])
    left, width = 20, 940
    height = 210
    out = ['<svg id="checkpoint-chain" data-check="checkpoint-chain" xmlns="http://www.w3.org/'
           '2000/svg" width="%d" height="%d" role="img" aria-label="Signed checkpoints and '
           'what was verified">' % (left + width + 30, height)]
    out.append('<text x="%d" y="18" class="caption">The secure log: signed checkpoints seen '
               'during the run, consistency between them, and the records the report '
               'proves</text>' % left)
    n = max(len(cps), 1)
    step = min(150, (width - 20) // n)
    verified_sizes = {(c['from_size'], c['to_size']): c['verified'] for c in obs['consistency']}
    prev = None
    for i, c in enumerate(cps):
        bx = left + i * step
        ok = c['signature_verified']
        out.append('<g class="checkpoint" data-check="checkpoint-%d"%s><rect x="%d" y="34" '
                   'width="%d" height="46" rx="4" fill="%s" stroke="#333"/><text x="%d" '
                   'y="52" class="onfill">size %d</text><text x="%d" y="70" class="onfill '
                   'small">%s</text><title>checkpoint at %s, tree size %d, root %s, '
                   'signature %s</title></g>' % (
                       i, _attrs(data_tree_size=c['tree_size'],
                                 data_verified=str(ok).lower()),
                       bx, step - 24, '#2e8b57' if ok else '#c0392b', bx + (step - 24) // 2,
                       c['tree_size'], bx + (step - 24) // 2,
                       'signature ok' if ok else 'signature BAD', _e(_when(c['time'])),
                       c['tree_size'], _e(c.get('root')), 'verified' if ok else 'NOT verified'))
        if prev is not None:
            v = verified_sizes.get((prev['tree_size'], c['tree_size']))
            colour = '#2e8b57' if v else ('#c0392b' if v is False else '#999')
            out.append('<g class="consistency"%s><line x1="%d" y1="57" x2="%d" y2="57" '
                       'stroke="%s" stroke-width="3"/><title>consistency %d -> %d: %s</title>'
                       '</g>' % (_attrs(data_verified=str(bool(v)).lower()), bx - 24, bx,
                                 colour, prev['tree_size'], c['tree_size'],
                                 {True: 'proved', False: 'FAILED'}.get(v, 'not checked')))
        prev = c
    # the log as an axis, one tick per report line, coloured by kind
    ay = 120
    scale = width / float(size)
    out.append('<g class="log-axis" data-check="log-axis"><rect x="%d" y="%d" width="%d" '
               'height="20" fill="#eeeeee" stroke="#999"/><text x="%d" y="%d" class="small">'
               'leaf 0</text><text x="%d" y="%d" class="small" text-anchor="end">tree size %d '
               '(report\'s checkpoint)</text></g>'
               % (left, ay, width, left, ay + 34, left + width, ay + 34, size))
    verified = (rep.get('verify') or {}).get('exit') == 0
    for item in lines:
        index, kind = item
        out.append('<rect class="report-line"%s x="%.1f" y="%d" width="2" height="20" '
                   'fill="%s"><title>record %d (%s)%s</title></rect>' % (
                       _attrs(data_index=index, data_kind=kind), left + index * scale, ay,
                       KIND_COLOURS.get(kind, '#555'), index, _e(kind),
                       ': inclusion proof verified' if verified else ''))
    out.append('<g class="verification-badge" data-check="verification-badge"%s><rect x="%d" '
               'y="%d" width="420" height="26" rx="4" fill="%s"/><text x="%d" y="%d" '
               'class="onfill">%s</text></g>' % (
                   _attrs(data_verified=str(verified).lower()), left, ay + 46,
                   '#2e8b57' if verified else '#c0392b', left + 210, ay + 64,
                   'report verified offline: %d lines, each proved in the signed log' %
                   len(lines) if verified else 'report NOT verified'))
    lx = left + 440
    for kind in ('placement', 'verdict', 'key', 'refusal', 'integrity', 'note'):
        out.append('<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" '
                   'class="small">%s</text>' % (lx, ay + 50, KIND_COLOURS[kind], lx + 13,
                                                ay + 59, kind))
        lx += 78
    out.append('</svg>')
    return '\n'.join(out)


# --------------------------------------------------------------------------- the page
CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 28px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 4px 6px; text-align: left; vertical-align: top; }
tr[data-ok="true"] td.status { background: #d9f2e1; }
tr[data-ok="false"] td.status { background: #f8d7d3; font-weight: bold; }
#verdict { padding: 10px; font-size: 18px; font-weight: bold; color: #fff; }
#verdict[data-passed="true"] { background: #2e8b57; }
#verdict[data-passed="false"] { background: #c0392b; }
svg text { font-size: 12px; } svg .caption { font-size: 13px; font-weight: bold; }
svg .small { font-size: 10px; } svg .tile { font-size: 12px; text-anchor: middle; }
svg .onfill { fill: #fff; font-size: 11px; text-anchor: middle; }
svg .label { font-size: 12px; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
"""

SCRIPT = """
(function () {
  var checked = document.querySelectorAll('[data-check]'), shown = 0;
  for (var i = 0; i < checked.length; i++) {
    var el = checked[i], box = el.getBoundingClientRect();
    var ok = box.width > 0 && box.height > 0;
    el.setAttribute('data-laid-out', ok ? 'yes' : 'no');
    if (ok) { shown++; }
  }
  document.body.setAttribute('data-rendered', String(shown));
})();
"""


def render(obs, outcomes, check=None):
    """The report page (a string of HTML)."""
    ok = core.passed(outcomes)
    proj = obs['project'] or {}
    cloud = obs['cloud'] or {}
    parts = ['<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
             '<title>tclouds %s scenario, run %s</title>'
             % (_e(obs.scenario), _e(obs['run_id'])),
             '<style>%s</style></head><body>' % CSS]
    parts.append('<h1>tclouds-openstack: the %s scenario</h1>' % _e(obs.scenario))
    parts.append('<div id="verdict" data-check="verdict"%s>%s</div>' % (
        _attrs(data_passed=str(ok).lower()),
        'Every expected outcome was observed' if ok else
        'NOT every expected outcome was observed (%d of %d)' % (
            sum(1 for o in outcomes if o.ok), len(outcomes))))
    parts.append('<table id="run"><tr><th>run</th><td>%s</td></tr><tr><th>cloud</th><td>%s'
                 '</td></tr><tr><th>project</th><td>%s (%s)</td></tr><tr><th>started</th><td>'
                 '%s</td></tr><tr><th>finished</th><td>%s</td></tr></table>' % (
                     _e(obs['run_id']), _e('%s, region %s%s' % (
                         cloud.get('auth_url'), cloud.get('region'),
                         ' - %s' % cloud['note'] if cloud.get('note') else '')),
                     _e(proj.get('name')), _e(proj.get('id')), _e(_when(obs['started'])),
                     _e(_when(obs['finished']))))
    parts.append('<h2>Expected outcomes</h2><table id="outcomes"><tr><th>outcome</th><th>'
                 'observed</th><th>evidence</th></tr>')
    for o in outcomes:
        parts.append('<tr class="outcome"%s><td>%s</td><td class="status">%s</td><td>%s'
                     '</td></tr>' % (_attrs(data_outcome=o.id, data_ok=str(o.ok).lower()),
                                     _e(o.text), 'yes' if o.ok else 'NO', _e(o.evidence)))
    parts.append('</table>')
    parts.append('<h2>Trust state of each host over time</h2>')
    parts.append(trust_timeline(obs))
    parts.append('<h2>Where each server, volume and object landed</h2>')
    parts.append(jurisdiction_map(obs))
    parts.append('<h2>The secure log: signed checkpoints and what was verified</h2>')
    parts.append(checkpoint_chain(obs))
    rep = obs['report'] or {}
    parts.append('<section id="verification"><h2>Offline verification of the project\'s '
                 'report</h2>')
    verify = rep.get('verify') or {}
    parts.append('<p>Report file <code>%s</code>: %s lines, proved against the checkpoint of '
                 'tree size %s. <code>tclouds-securelog verify-report</code> exit %s.</p>' % (
                     _e(rep.get('file')), _e(rep.get('lines')), _e(rep.get('tree_size')),
                     _e(verify.get('exit'))))
    if verify.get('output'):
        parts.append('<pre>%s</pre>' % _e(verify['output']))
    if rep.get('tampered'):
        parts.append('<table id="tampered"><tr><th>copy of the report</th><th>exit</th>'
                     '<th>check named</th></tr>')
        for t in rep['tampered']:
            parts.append('<tr class="tampered"%s><td>%s</td><td>%s</td><td>%s</td></tr>' % (
                _attrs(data_exit=t.get('exit')), _e(t['change']), _e(t.get('exit')),
                _e(t.get('check'))))
        parts.append('</table>')
    if rep.get('summaries'):
        parts.append('<h3>The report\'s lines (as the tenant reads them)</h3><ol>')
        parts.extend('<li>%s</li>' % _e(s) for s in rep['summaries'])
        parts.append('</ol>')
    parts.append('</section>')
    if obs['facts']:
        parts.append('<h2>Figures</h2><pre id="facts">%s</pre>' % _e(json.dumps(
            obs['facts'], indent=1, sort_keys=True)))
    parts.append('<h2>Steps</h2><table id="steps"><tr><th>time</th><th>step</th><th>ok</th>'
                 '<th>detail</th></tr>')
    for s in obs['steps']:
        parts.append('<tr class="step"%s><td>%s</td><td>%s</td><td>%s</td><td><code>%s</code>'
                     '</td></tr>' % (_attrs(data_step=s['id'], data_ok=str(s['ok']).lower()),
                                     _e(_when(s['time'])), _e(s['title']),
                                     'yes' if s['ok'] else 'NO',
                                     _e(json.dumps(s.get('detail'), sort_keys=True)[:2000])))
    parts.append('</table>')
    if check is not None:
        parts.append('<p id="browser-check">%s</p>' % _e(check))
    parts.append('<script>%s</script></body></html>' % SCRIPT)
    return '\n'.join(parts)


def expected_elements(obs, outcomes):
    """``(description, tag, attributes)`` the rendered report must contain.

    Each one carrying ``data-check`` must also be laid out by the browser.
    """
    want = [('verdict banner', 'div', {'id': 'verdict'}),
            ('trust timeline picture', 'svg', {'id': 'trust-timeline'}),
            ('jurisdiction map picture', 'svg', {'id': 'jurisdiction-map'}),
            ('checkpoint picture', 'svg', {'id': 'checkpoint-chain'}),
            ('verification badge', 'g', {'class': 'verification-badge'}),
            ('outcomes table', 'table', {'id': 'outcomes'})]
    for host in _hosts(obs):
        want.append(('track of host %s' % host, 'g', {'class': 'host-track', 'data-host': host}))
    for p in obs['placements']:
        if not (p.get('host') or p.get('clouds')):
            continue      # landed nowhere (refused): nothing to draw
        want.append(('%s %s on the map' % (p['kind'], p['id']), 'g',
                     {'class': 'resource', 'data-kind': p['kind'], 'data-id': p['id']}))
    for c in obs['checkpoints']:
        want.append(('checkpoint of size %d' % c['tree_size'], 'g',
                     {'class': 'checkpoint', 'data-tree-size': str(c['tree_size'])}))
    for o in outcomes:
        want.append(('outcome %s' % o.id, 'tr',
                     {'class': 'outcome', 'data-outcome': o.id, 'data-ok': str(o.ok).lower()}))
    if obs['facts'].get('compromised_at') is not None:
        want.append(('compromise marker', 'g', {'class': 'event', 'data-event': 'compromise'}))
    return want
