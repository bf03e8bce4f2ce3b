import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  paramFields,
  coerce,
  promoteBody,
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
    on_failure: [{ action: 'email', to: 'a@b.c' }]
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
