import * as React from 'react';
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { promoteModelBody } from '../logic';
import { formatMetric, keyMetrics, promotionHistory } from '../view';
import type { Model, PanelModel, Promotion } from '../model';
import { ActionButton, Field, Section } from './common';

/** What the model promotion dialog asks: candidate version, alias, the metric compared and requirements. */
export interface ModelPromoteForm {
  version: string;
  alias: string;
  metric: string;
  direction: string; // 'higher' or 'lower'
  require: string; // lines such as 'auc >= 0.8'
}

/** Requirements typed one per line (`auc >= 0.8`) as `{metric: condition}`, or the line that is not one. */
export function parseRequire(text: string): { require: Record<string, string>; error?: string } {
  const require: Record<string, string> = {};
  for (const line of text
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z_][\w.:/-]*)\s*((?:<=|>=|==|!=|<|>).*)$/.exec(line);
    if (!m) return { require, error: `requirement: 'metric >= value', got '${line}'` };
    require[m[1]] = m[2].trim();
  }
  return { require };
}

/** The dialog body of a model promotion, with the error of each field under it and a summary on top. */
export class ModelPromoteBody extends ReactWidget {
  constructor(
    readonly model: Model,
    public form: ModelPromoteForm,
    readonly errors: Record<string, string> = {}
  ) {
    super();
    this.addClass('mlscale-promote');
  }

  getValue(): ModelPromoteForm {
    return this.form;
  }

  protected render(): JSX.Element {
    const set = (k: keyof ModelPromoteForm) => (e: { target: { value: string } }) => {
      this.form = { ...this.form, [k]: e.target.value };
      this.update();
    };
    const n = Object.keys(this.errors).length;
    return (
      <div>
        <div className="mlscale-error mlscale-error-general">
          {n ? `${n} field(s) need a fix: ${Object.values(this.errors).join('; ')}` : ''}
        </div>
        <Field name="version" label="Candidate version" error={this.errors.version}>
          <select
            name="version"
            className="jp-mod-styled"
            value={this.form.version}
            onChange={set('version')}
          >
            {this.model.versions.map(v => (
              <option key={v.version} value={v.version}>
                v{v.version}
                {v.aliases.length ? ` (@${v.aliases.join(', @')})` : ''}
              </option>
            ))}
          </select>
        </Field>
        <Field name="alias" label="Alias to move" error={this.errors.alias}>
          <input
            name="alias"
            className="jp-mod-styled"
            value={this.form.alias}
            onChange={set('alias')}
          />
        </Field>
        <Field
          name="metric"
          label="Metric compared with the alias holder"
          error={this.errors.metric}
        >
          <input
            name="metric"
            className="jp-mod-styled"
            value={this.form.metric}
            onChange={set('metric')}
          />
        </Field>
        <Field name="direction" label="Better is" error={this.errors.direction}>
          <select
            name="direction"
            className="jp-mod-styled"
            value={this.form.direction}
            onChange={set('direction')}
          >
            <option value="higher">higher</option>
            <option value="lower">lower</option>
          </select>
        </Field>
        <Field
          name="require"
          label="Requirements (one a line, e.g. auc >= 0.8)"
          error={this.errors.require}
        >
          <textarea
            name="require"
            className="jp-mod-styled"
            rows={3}
            value={this.form.require}
            onChange={set('require')}
          />
        </Field>
      </div>
    );
  }
}

/** The decision of a promotion as a dialog body: promoted or rejected, the reasons, the metrics side by side. */
function Decision(props: { d: Promotion }): JSX.Element {
  const d = props.d;
  const keys = Array.from(
    new Set([...Object.keys(d.metrics), ...Object.keys(d.champion_metrics)])
  ).sort();
  return (
    <div className="mlscale-decision" data-decision={d.promoted ? 'promoted' : 'rejected'}>
      <p>
        <span className={`mlscale-badge mlscale-${d.promoted ? 'ok' : 'bad'}`}>
          {d.promoted ? 'promoted' : 'rejected'}
        </span>{' '}
        {d.name} v{d.version} {d.promoted ? 'now holds' : 'does not get'} @{d.alias}
        {d.by ? <span className="mlscale-meta"> (decided by {d.by})</span> : null}
      </p>
      <ul>
        {d.reasons.map((r, i) => (
          <li key={i}>{r}</li>
        ))}
      </ul>
      {keys.length ? (
        <table className="mlscale-table">
          <thead>
            <tr>
              <th>metric</th>
              <th>v{d.version}</th>
              <th>{d.champion_version ? `v${d.champion_version}` : '—'}</th>
            </tr>
          </thead>
          <tbody>
            {keys.map(k => (
              <tr key={k} className={k === d.metric ? 'mlscale-selected' : ''}>
                <th>{k}</th>
                <td>{formatMetric(d.metrics[k])}</td>
                <td>{formatMetric(d.champion_metrics[k])}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}

/** The dialog field a message of `promoteModelBody` is about. */
function errorField(message: string): string {
  for (const [start, key] of [
    ['version', 'version'],
    ['alias', 'alias'],
    ['requirement', 'require']
  ])
    if (message.startsWith(start)) return key;
  return 'metric';
}

/** Ask for a promotion until it is valid (errors at the fields), send it, show the decision. */
export async function promoteModel(panel: PanelModel, m: Model, metrics: string[]): Promise<void> {
  const last = m.versions[m.versions.length - 1];
  let form: ModelPromoteForm = {
    version: last?.version || '1',
    alias: 'champion',
    metric: metrics[0] || '',
    direction: 'higher',
    require: ''
  };
  let errors: Record<string, string> = {};
  for (;;) {
    const body = new ModelPromoteBody(m, form, errors);
    const res = await showDialog({
      title: `Promote a version of ${m.name}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })]
    });
    if (!res.button.accept) return;
    form = res.value || form;
    const req = parseRequire(form.require);
    const check = promoteModelBody(
      form.version,
      form.alias,
      form.metric,
      req.require,
      form.direction === 'higher'
    );
    errors = {};
    if (req.error) errors.require = req.error;
    if (check.error) errors[errorField(check.error)] = check.error;
    if (Object.keys(errors).length) continue;
    const d = await panel.promoteModel(
      m.name,
      form.version,
      form.alias,
      form.metric,
      req.require,
      form.direction === 'higher'
    );
    await showDialog({
      title: d.promoted ? 'Promoted' : 'Not promoted',
      body: ReactWidget.create(<Decision d={d} />),
      buttons: [Dialog.okButton()]
    });
    return;
  }
}

/** The newest versions side by side: a column per version, a row per key metric, then their aliases. */
function VersionsTable(props: {
  versions: Model['versions'];
  metrics: Record<string, number>[];
  keys: string[];
}): JSX.Element {
  const vs = props.versions;
  return (
    <div className="mlscale-scroll">
      <table className="mlscale-table mlscale-versions">
        <thead>
          <tr>
            <th />
            {vs.map(v => (
              <th key={v.version}>v{v.version}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.keys.map(k => (
            <tr key={k}>
              <th>{k}</th>
              {vs.map((v, i) => (
                <td key={v.version}>{formatMetric(props.metrics[i][k])}</td>
              ))}
            </tr>
          ))}
          <tr>
            <th>aliases</th>
            {vs.map(v => (
              <td key={v.version}>{v.aliases.map(a => `@${a}`).join(' ')}</td>
            ))}
          </tr>
        </tbody>
      </table>
    </div>
  );
}

/** The recorded promotion decisions of a model, newest first, folded: what, for which alias, who, when, why. */
function PromotionList(props: { promotions: Model['promotions'] }): JSX.Element | null {
  const history = promotionHistory(props.promotions);
  if (!history.length) return null;
  return (
    <details className="mlscale-history">
      <summary>promotion history ({history.length})</summary>
      <ul>
        {history.map(h => (
          <li key={h.key} data-decision={h.decision} data-alias={h.alias} data-version={h.version}>
            <span className={`mlscale-badge mlscale-${h.decision === 'promoted' ? 'ok' : 'bad'}`}>
              {h.decision}
            </span>{' '}
            v{h.version} → @{h.alias} by{' '}
            <span className="mlscale-by" title={h.by}>
              {h.by}
            </span>{' '}
            <span className="mlscale-meta" title={h.at}>
              {h.when}
              {h.comparedTo ? `, compared with v${h.comparedTo}` : ''}
            </span>
            <div className="mlscale-meta">{h.reasons.join('; ')}</div>
          </li>
        ))}
      </ul>
    </details>
  );
}

/** One registered model: versions with key metrics side by side, aliases with their promotion history. */
export const ModelCard = React.memo(function ModelCard(props: {
  model: Model;
  runMetrics: Record<string, Record<string, number>>;
  panel: PanelModel;
}): JSX.Element {
  const m = props.model;
  const vs = m.versions.slice(-6); // the newest six versions side by side
  const mets = vs.map(v => (v.run_id && props.runMetrics[v.run_id]) || {});
  const keys = keyMetrics(mets, 4);
  return (
    <div className="mlscale-card mlscale-model" data-name={m.name}>
      <div className="mlscale-card-head">
        <b>{m.name}</b> <span className="mlscale-meta">{m.versions.length} version(s)</span>{' '}
        {Object.entries(m.aliases).map(([a, v]) => (
          <span key={a} className="mlscale-tag mlscale-alias" title={`@${a} is version ${v}`}>
            @{a} → v{v}
          </span>
        ))}
      </div>
      <VersionsTable versions={vs} metrics={mets} keys={keys} />
      <PromotionList promotions={m.promotions} />
      <div className="mlscale-controls">
        <ActionButton label="Promote" accept onClick={() => promoteModel(props.panel, m, keys)} />
      </div>
    </div>
  );
});

/** The Models section: the project's registered models. */
export function ModelsSection(props: { model: PanelModel }): JSX.Element {
  const s = props.model.state;
  return (
    <Section name="models" title="Models" error={s.errors.models}>
      {s.models.map(m => (
        <ModelCard key={m.name} model={m} runMetrics={s.runMetrics} panel={props.model} />
      ))}
      {s.loaded && !s.models.length ? <i className="mlscale-empty">no registered models</i> : null}
    </Section>
  );
}
