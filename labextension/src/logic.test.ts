import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  paramFields,
  coerce,
  promoteBody,
  actionBody,
  ruleBody,
  scaleBody,
  adaptBody,
  runBody,
  promoteModelBody,
  statusBadge,
  formatBytes,
  formatWhen,
  sparkline,
  clientCode
} from './logic';

const fields = paramFields({
  rows: { default: '10', type: 'int' },
  label: { default: "'x'", type: 'str' },
  lr: { default: '0.1', type: 'float' },
  on: { default: 'True', type: 'bool' }
});
const form = (over: Partial<Record<string, any>> = {}) => ({
  notebook: 'nb.ipynb',
  name: 'job1',
  schedule: '0 3 * * *',
  timezone: '',
  cluster: '',
  retries: '2',
  timeout: '',
  alertEmail: '',
  params: { rows: '10', label: 'x', lr: '0.1', on: 'True' },
  ...over
});

test('parameter fields come from the parameters cell with defaults unquoted', () => {
  assert.deepEqual(
    fields.map(f => [f.name, f.type, f.value]),
    [
      ['rows', 'int', '10'],
      ['label', 'str', 'x'],
      ['lr', 'float', '0.1'],
      ['on', 'bool', 'True']
    ]
  );
});

test('values are coerced to their declared type or rejected with the parameter name', () => {
  assert.equal(coerce(fields[0], ' 42 '), 42);
  assert.throws(() => coerce(fields[0], '4.5'), /rows: expected an integer/);
  assert.equal(coerce(fields[2], '1e-3'), 0.001);
  assert.throws(() => coerce(fields[2], 'abc'), /lr: expected a number/);
  assert.equal(coerce(fields[3], 'false'), false);
  assert.throws(() => coerce(fields[3], 'maybe'), /on: expected True or False/);
});

test('promote body sends only changed parameters and the job fields', () => {
  const { body, errors } = promoteBody(
    form({
      params: { rows: '20', label: 'x', lr: '0.1', on: 'True' },
      alertEmail: 'a@b.c',
      timeout: '600'
    }),
    fields
  );
  assert.deepEqual(errors, {});
  assert.deepEqual(body, {
    notebook: 'nb.ipynb',
    name: 'job1',
    schedule: '0 3 * * *',
    timezone: 'UTC',
    parameters: { rows: 20 },
    retries: 2,
    timeout: 600,
    on_failure: [{ email: 'a@b.c' }]
  });
});

test('promote form errors are reported per field and nothing is sent', () => {
  const r = promoteBody(
    form({
      name: 'bad name',
      schedule: '* *',
      retries: '-1',
      timeout: '0',
      alertEmail: 'nope',
      params: { rows: 'many' }
    }),
    fields
  );
  assert.equal(r.body, undefined);
  assert.deepEqual(Object.keys(r.errors).sort(), [
    'alertEmail',
    'name',
    'retries',
    'rows',
    'schedule',
    'timeout'
  ]);
});

test('status badges and formatting', () => {
  assert.deepEqual(statusBadge('succeeded'), { cls: 'ok', label: 'succeeded' });
  assert.deepEqual(statusBadge('timed_out'), { cls: 'bad', label: 'timed out' });
  assert.deepEqual(statusBadge(null), { cls: 'idle', label: 'never run' });
  assert.equal(formatBytes(2 * 1024 ** 3), '2.0 GiB');
  assert.equal(formatBytes(0), '—');
  const now = new Date('2026-01-01T00:00:00Z');
  assert.equal(formatWhen('2026-01-01T02:00:00Z', now), 'in 2h');
  assert.equal(formatWhen('2025-12-31T23:59:30Z', now), '30s ago');
  assert.equal(sparkline([1, 3], 10, 10), '0.0,10.0 10.0,0.0');
  assert.equal(sparkline([]), '');
  assert.match(clientCode('c1', 'tcp://127.0.0.1:1'), /Client\("tcp:\/\/127.0.0.1:1"\)/);
});

const rule = (over: Record<string, any> = {}) => ({
  kind: 'metric' as const,
  metric: 'auc',
  op: '<',
  threshold: '0.8',
  column: '',
  stat: 'psi',
  condition: '',
  actions: [],
  ...over
});

test('alert actions use the server shape: {email}, {webhook}, {retrain}', () => {
  assert.deepEqual(actionBody({ kind: 'email', target: ' a@b.c ' }).body, { email: 'a@b.c' });
  assert.deepEqual(actionBody({ kind: 'webhook', target: 'https://h/x' }).body, {
    webhook: 'https://h/x'
  });
  assert.deepEqual(actionBody({ kind: 'webhook', target: '${HOOK}' }).body, { webhook: '${HOOK}' });
  assert.deepEqual(actionBody({ kind: 'retrain', target: 'train' }).body, { retrain: 'train' });
  assert.match(actionBody({ kind: 'email', target: 'nope' }).error!, /not an address/);
  assert.match(actionBody({ kind: 'webhook', target: 'ftp://x' }).error!, /http\(s\) URL/);
  assert.match(actionBody({ kind: 'retrain', target: 'a b' }).error!, /job name/);
});

test('alert rules: a metric threshold or a drift condition, with their actions', () => {
  assert.deepEqual(ruleBody(rule({ actions: [{ kind: 'email', target: 'a@b.c' }] })).body, {
    metric: 'auc',
    op: '<',
    threshold: 0.8,
    actions: [{ email: 'a@b.c' }]
  });
  assert.deepEqual(
    ruleBody(rule({ kind: 'drift', column: 'amount', stat: 'psi', condition: '> 0.2' })).body,
    { drift: { column: 'amount', psi: '> 0.2' }, actions: [] }
  );
  assert.match(ruleBody(rule({ op: '=' })).error!, /operator/);
  assert.match(ruleBody(rule({ threshold: 'x' })).error!, /threshold/);
  assert.match(
    ruleBody(rule({ kind: 'drift', column: 'a', condition: 'big' })).error!,
    /condition/
  );
  const r = promoteBody(form({ rules: [rule({ op: '=' })], alertWebhook: 'nope' }), fields);
  assert.equal(r.body, undefined);
  assert.deepEqual(Object.keys(r.errors).sort(), ['alertWebhook', 'rule0']);
  const ok = promoteBody(form({ rules: [rule()], alertWebhook: 'http://h/' }), fields);
  assert.deepEqual(ok.body!.alerts, [{ metric: 'auc', op: '<', threshold: 0.8, actions: [] }]);
  assert.deepEqual(ok.body!.on_failure, [{ webhook: 'http://h/' }]);
});

test('scale, adapt, run-with-overrides and model promotion bodies', () => {
  assert.deepEqual(scaleBody(' 3 ').body, { n: 3 });
  assert.match(scaleBody('-1').error!, /whole number/);
  assert.deepEqual(adaptBody('1', '4').body, { minimum: 1, maximum: 4 });
  assert.match(adaptBody('5', '4').error!, /minimum <= maximum/);
  assert.deepEqual(runBody(fields, { rows: '7', label: 'x' }).body, { parameters: { rows: 7 } });
  assert.deepEqual(Object.keys(runBody(fields, { lr: 'fast' }).errors), ['lr']);
  assert.deepEqual(promoteModelBody('2', 'champion', 'auc').body, {
    version: 2,
    alias: 'champion',
    greater_is_better: true,
    metric: 'auc'
  });
  assert.match(promoteModelBody('2', 'champion', '').error!, /needs a metric/);
  assert.match(promoteModelBody('x', 'champion', 'auc').error!, /version/);
  assert.match(promoteModelBody('1', '1bad', 'auc').error!, /alias/);
});
