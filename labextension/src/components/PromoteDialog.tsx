import * as React from 'react';
import { ReactWidget } from '@jupyterlab/apputils';
import { DRIFT_STATS, FormField, OPS, PromoteForm, RuleForm } from '../logic';
import { Field } from './common';

type Values = Record<string, string>;

/** The job fields of the dialog: name, label, input kind (text, number or select options) and placeholder. */
const JOB_FIELDS: [string, string, string | string[], string][] = [
  ['name', 'Name', 'text', ''],
  ['schedule', 'Schedule (cron)', 'text', '0 3 * * *'],
  ['timezone', 'Time zone', 'text', ''],
  ['cluster', 'Cluster profile', 'profiles', ''],
  ['retries', 'Retries', 'number', ''],
  ['timeout', 'Timeout (s)', 'number', 'none'],
  ['alertEmail', 'Alert e-mail on failure', 'text', 'you@example.com'],
  ['alertWebhook', 'Alert webhook on failure', 'text', 'https://hooks.example.com/… or ${HOOK_URL}']
];

const RULE_FIELDS: [string, string, string | string[], string][] = [
  ['ruleKind', 'Rule', ['', 'metric', 'drift'], ''],
  ['ruleMetric', 'Metric', 'text', 'auc'],
  ['ruleOp', 'Breach when', OPS, ''],
  ['ruleThreshold', 'Threshold', 'text', '0.8'],
  ['ruleColumn', 'Drift column', 'text', 'amount'],
  ['ruleStat', 'Drift statistic', DRIFT_STATS, ''],
  ['ruleCondition', 'Drift condition', 'text', '> 0.2'],
  ['ruleAction', 'Then', ['email', 'webhook', 'retrain'], ''],
  ['ruleTarget', 'To (address, URL or job)', 'text', 'you@example.com']
];

/** The first values of the dialog: the notebook's name as job name, the parameters' defaults. */
export function initialValues(notebook: string, fields: FormField[]): Values {
  const stem = notebook
    .split('/')
    .pop()!
    .replace(/\.ipynb$/, '')
    .replace(/[^A-Za-z0-9_.-]/g, '-');
  const v: Values = {
    name: stem,
    timezone: 'UTC',
    retries: '0',
    ruleOp: '<',
    ruleStat: 'psi',
    ruleAction: 'email'
  };
  for (const f of fields) v[`param:${f.name}`] = f.value;
  return v;
}

/**
 * The body of the "Promote to job" dialog: every input by name, its error under it and a summary at the top
 * (scrolled into view, so an error below the fold is not missed); the body scrolls inside the dialog.
 */
export class PromoteBody extends ReactWidget {
  private top = React.createRef<HTMLDivElement>();

  constructor(
    readonly notebook: string,
    readonly fields: FormField[],
    readonly profiles: string[],
    public values: Values,
    readonly errors: Record<string, string> = {},
    readonly general = ''
  ) {
    super();
    this.addClass('mlscale-promote');
  }

  protected onAfterAttach(msg: any): void {
    super.onAfterAttach(msg);
    if (this.general || Object.keys(this.errors).length)
      requestAnimationFrame(() => this.top.current?.scrollIntoView?.({ block: 'nearest' }));
  }

  /** What is typed, as the form `promoteBody` checks. */
  form(): PromoteForm {
    const v = (k: string) => this.values[k] ?? '';
    const params: Record<string, string> = {};
    for (const f of this.fields) params[f.name] = v(`param:${f.name}`);
    return {
      notebook: this.notebook,
      name: v('name'),
      schedule: v('schedule'),
      timezone: v('timezone'),
      cluster: v('cluster'),
      retries: v('retries'),
      timeout: v('timeout'),
      alertEmail: v('alertEmail'),
      alertWebhook: v('alertWebhook'),
      rules: this.rules(v),
      params
    };
  }

  private rules(v: (k: string) => string): RuleForm[] {
    const kind = v('ruleKind');
    if (kind !== 'metric' && kind !== 'drift') return [];
    const target = v('ruleTarget');
    const action = v('ruleAction') as 'email' | 'webhook' | 'retrain';
    return [
      {
        kind,
        metric: v('ruleMetric'),
        op: v('ruleOp'),
        threshold: v('ruleThreshold'),
        column: v('ruleColumn'),
        stat: v('ruleStat'),
        condition: v('ruleCondition'),
        actions: target.trim() ? [{ kind: action, target }] : []
      }
    ];
  }

  private input(
    key: string,
    kind: string | string[],
    placeholder: string,
    name = key
  ): JSX.Element {
    const set = (e: { target: { value: string } }) => {
      this.values = { ...this.values, [key]: e.target.value };
      this.update();
    };
    const value = this.values[key] ?? '';
    if (Array.isArray(kind) || kind === 'profiles') {
      const opts = kind === 'profiles' ? ['', ...this.profiles] : (kind as string[]);
      return (
        <select name={name} className="jp-mod-styled" value={value} onChange={set}>
          {opts.map(o => (
            <option key={o} value={o}>
              {o || '(none)'}
            </option>
          ))}
        </select>
      );
    }
    return (
      <input
        name={name}
        className="jp-mod-styled"
        type={kind === 'number' ? 'number' : 'text'}
        placeholder={placeholder}
        value={value}
        onChange={set}
      />
    );
  }

  protected render(): JSX.Element {
    const e = this.errors;
    const n = Object.keys(e).length;
    const summary =
      this.general || (n ? `${n} field(s) need a fix: ${Object.values(e).join('; ')}` : '');
    const row = ([k, label, kind, ph]: [string, string, string | string[], string]) => (
      <Field key={k} name={k} label={label} error={e[k]}>
        {this.input(k, kind, ph)}
      </Field>
    );
    return (
      <div>
        <div ref={this.top} className="mlscale-error mlscale-error-general">
          {summary}
        </div>
        {JOB_FIELDS.map(row)}
        <h4>Alert rule</h4>
        {RULE_FIELDS.map(row)}
        <div className="mlscale-error" data-error="rule0">
          {e.rule0 || ''}
        </div>
        <h4>Parameters</h4>
        {this.fields.map(f => (
          <Field key={f.name} name={f.name} label={`${f.name} (${f.type})`} error={e[f.name]}>
            {this.input(`param:${f.name}`, 'text', f.help, f.name)}
          </Field>
        ))}
        {!this.fields.length ? <i>no parameters cell</i> : null}
      </div>
    );
  }
}
