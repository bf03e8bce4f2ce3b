import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chartGeometry,
  endedRuns,
  errorSummary,
  formatDuration,
  formatMetric,
  keyMetrics,
  mergeList,
  metricUnit,
  runLabel,
  promotionHistory,
  decidedWhen,
  UNKNOWN_USER,
  scheduleInWords
} from './view';

test('a poll keeps the unchanged items (same objects) and the list itself when nothing changed', () => {
  const a = { name: 'a', workers: 1 };
  const b = { name: 'b', workers: 2 };
  const prev = [a, b];
  const same = mergeList(
    prev,
    [
      { name: 'a', workers: 1 },
      { name: 'b', workers: 2 }
    ],
    x => x.name
  );
  assert.equal(same, prev);
  const next = mergeList(
    prev,
    [
      { name: 'a', workers: 1 },
      { name: 'b', workers: 3 }
    ],
    x => x.name
  );
  assert.notEqual(next, prev);
  assert.equal(next[0], a);
  assert.notEqual(next[1], b);
  assert.equal(next[1].workers, 3);
  assert.deepEqual(
    mergeList(prev, [b], x => x.name),
    [b]
  );
});

test('durations read as a person reads them', () => {
  assert.equal(formatDuration(0.85), '850 ms');
  assert.equal(formatDuration(12.34), '12.3 s');
  assert.equal(formatDuration(245), '4m 05s');
  assert.equal(formatDuration(7380), '2h 03m');
  assert.equal(formatDuration(3 * 86400 + 4 * 3600), '3d 4h');
  assert.equal(formatDuration(null), '—');
});

test('schedules in words, the expression where there is no simple reading', () => {
  assert.equal(scheduleInWords('0 3 * * *'), 'every day at 03:00 UTC');
  assert.equal(
    scheduleInWords('30 9 * * 1-5', 'Europe/Paris'),
    'Monday to Friday at 09:30 Europe/Paris'
  );
  assert.equal(scheduleInWords('*/15 * * * *'), 'every 15 minutes');
  assert.equal(scheduleInWords('5 * * * *'), 'every hour at :05');
  assert.equal(scheduleInWords('0 */6 * * *'), 'every 6 hours at :00');
  assert.equal(scheduleInWords('@daily'), 'every day at 00:00 UTC');
  assert.equal(scheduleInWords('0 8 1 * *'), 'on the 1st of every month at 08:00 UTC');
  assert.equal(scheduleInWords('0 8 * * 0,3'), 'every Sunday, Wednesday at 08:00 UTC');
  assert.equal(scheduleInWords('0 8 1-7 * 1'), 'cron 0 8 1-7 * 1 (UTC)');
  assert.equal(scheduleInWords(null), 'on demand');
});

test('a metric chart has one visible point per run, inside the axes, even for one run', () => {
  const one = chartGeometry([{ value: 0.9, label: 'r1' }], 320, 160);
  assert.equal(one.points.length, 1);
  const p = one.points[0];
  assert.ok(p.x > one.plot.left && p.x < one.plot.right, 'x inside the plot');
  assert.ok(p.y > one.plot.top && p.y < one.plot.bottom, 'y inside the plot (not on an edge)');
  assert.equal(one.yTicks.length, 5);
  assert.deepEqual(
    one.xTicks.map(t => t.label),
    ['r1']
  );
  const many = chartGeometry(
    [1, 2, NaN, 4].map((v, i) => ({ value: v, label: `r${i}` })),
    320,
    160
  );
  assert.equal(many.points.length, 3, 'NaN left out');
  assert.equal(many.points[0].x, many.plot.left);
  assert.equal(many.points[2].x, many.plot.right);
  assert.ok(many.points[2].y < many.points[0].y, 'larger values higher');
  const lo = Number(many.yTicks[0].label);
  const hi = Number(many.yTicks[4].label);
  assert.ok(lo < 1 && hi > 4, `the y axis spans the values: ${lo}..${hi}`);
  assert.deepEqual(chartGeometry([]).points, []);
});

test('promotion history: every decision the server lists, with who, by alias', () => {
  const records = [
    {
      version: '2',
      alias: 'champion',
      decision: 'rejected',
      reasons: ['auc = 0.7 does not beat @champion v1'],
      time: '2026-01-03T00:00:00.000+00:00',
      by: 'bob',
      compared_version: '1'
    },
    {
      version: '2',
      alias: 'champion',
      decision: 'rejected',
      reasons: ['auc = 0.7 does not beat @champion v1'],
      time: '2026-01-02T00:00:00.000+00:00',
      by: 'ada',
      compared_version: '1'
    },
    { version: '2', alias: 'staging', decision: 'promoted', time: '2026-01-01T12:00:00+00:00' },
    { version: '1', alias: 'champion', decision: 'promoted', reasons: [], time: null, by: null }
  ];
  const all = promotionHistory(records);
  assert.deepEqual(
    all.map(p => [p.alias, p.version, p.decision, p.by]),
    [
      ['champion', '2', 'rejected', 'bob'],
      ['champion', '2', 'rejected', 'ada'],
      ['staging', '2', 'promoted', UNKNOWN_USER],
      ['champion', '1', 'promoted', UNKNOWN_USER]
    ]
  );
  assert.equal(
    new Set(all.map(p => p.key)).size,
    4,
    'two decisions for the same version and alias'
  );
  const champ = promotionHistory(records, 'champion');
  assert.equal(champ.length, 3);
  assert.deepEqual(champ[0].reasons, ['auc = 0.7 does not beat @champion v1']);
  assert.equal(champ[0].comparedTo, '1');
  assert.deepEqual(champ[2].reasons, []);
  assert.equal(champ[2].at, '');
  assert.deepEqual(promotionHistory(undefined), []);
  const now = new Date('2026-01-03T00:10:00Z');
  assert.deepEqual(
    promotionHistory(records, 'champion', now).map(p => p.when),
    ['10m ago', '1d ago', 'at an unrecorded time']
  );
});

test('when a decision was made: a time a little ahead of this clock is just now', () => {
  const now = new Date('2026-01-03T00:00:00Z');
  assert.equal(decidedWhen('2026-01-03T00:00:02.500+00:00', now), 'just now');
  assert.equal(decidedWhen('2026-01-02T23:59:30+00:00', now), 'just now');
  assert.equal(decidedWhen('2026-01-02T23:00:00+00:00', now), '1h ago');
  assert.equal(decidedWhen('not a time', now), 'not a time');
  assert.equal(decidedWhen(null, now), 'at an unrecorded time');
});

test('key metrics, metric values, error summaries', () => {
  assert.deepEqual(keyMetrics([{ auc: 1, loss: 2 }, { auc: 0.5 }, { zeta: 1, loss: 1 }], 2), [
    'auc',
    'loss'
  ]);
  assert.equal(formatMetric(0.912345), '0.9123');
  assert.equal(formatMetric(undefined), '—');
  assert.equal(formatMetric(1234567), '1.235e+6');
  const tb = 'Traceback (most recent call last):\n  File "x", line 1\nValueError: boom\n';
  assert.equal(errorSummary(tb), 'ValueError: boom');
  assert.equal(errorSummary('x'.repeat(300), 10), 'xxxxxxxxx…');
  assert.equal(errorSummary(null), '');
});

test('the runs started here that ended are the ones to notify about', () => {
  const watched = new Map([
    ['r1', 'a'],
    ['r2', 'b']
  ]);
  const out = endedRuns(watched, [
    { id: 'r1', status: 'running' },
    { id: 'r2', status: 'failed', error: 'ValueError: boom' },
    { id: 'r3', status: 'succeeded' }
  ]);
  assert.deepEqual(out, [{ id: 'r2', job: 'b', status: 'failed', error: 'ValueError: boom' }]);
});

test('metric units from their names, run labels for the chart axis', () => {
  assert.equal(metricUnit('duration_s'), 's');
  assert.equal(metricUnit('latency_ms'), 'ms');
  assert.equal(metricUnit('auc'), '');
  assert.equal(metricUnit('accuracy_pct'), '%');
  assert.equal(runLabel({ id: 'abcdef123', started_at: '2026-03-04T05:06:00Z' }), '03-04 05:06');
  assert.equal(runLabel({ id: 'abcdef123' }), 'abcdef');
});
