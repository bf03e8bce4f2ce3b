import * as React from 'react';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { formatWhen } from '../logic';
import {
  errorSummary,
  formatDuration,
  formatMetric,
  metricUnit,
  runLabel,
  scheduleInWords
} from '../view';
import type { JobModel, Run } from '../model';
import { ActionButton, Badge, Field, showError, Stat } from './common';
import { MetricChart } from './MetricChart';

/** Where `mlscale mlflow-ui` serves the MLflow UI (its `/#/runs/<id>` page finds the run's experiment). */
export const MLFLOW_UI = 'http://127.0.0.1:5000';

/** What the job view needs from Lab: open a run's output notebook. */
export interface JobActions {
  openOutput: (run: Run) => Promise<void>;
}

/** Run now with parameter overrides: the notebook's parameters, pre-filled with the job's values. */
function RunNowForm(props: { model: JobModel }): JSX.Element {
  const fields = props.model.fields;
  const [values, setValues] = React.useState<Record<string, string>>({});
  const [errors, setErrors] = React.useState<Record<string, string>>({});
  const run = async () => {
    const out = await props.model.panel.runNow(props.model.name, fields, values);
    setErrors(out.errors);
    if (out.run) await props.model.refresh();
  };
  return (
    <div className="mlscale-runnow">
      {fields.map(f => (
        <Field key={f.name} name={f.name} label={`${f.name} (${f.type})`} error={errors[f.name]}>
          <input
            name={f.name}
            className="jp-mod-styled"
            title={f.help}
            value={values[f.name] ?? f.value}
            onChange={e => setValues({ ...values, [f.name]: e.target.value })}
          />
        </Field>
      ))}
      <ActionButton
        label="Run now"
        accept
        onClick={run}
        title={fields.length ? 'run with these parameters (changed ones are overrides)' : 'run now'}
      />
    </div>
  );
}

/** A run's details: status, attempts, parameters, metrics, the error in full, output and MLflow run. */
function RunDetail(props: { run: Run; actions: JobActions }): JSX.Element {
  const r = props.run;
  return (
    <div className="mlscale-run-detail" data-run={r.id}>
      <h4>
        Run {r.id} <Badge status={r.status} />
      </h4>
      <div className="mlscale-stats">
        <Stat label="trigger" value={r.trigger} />
        <Stat label="attempt" value={r.attempt} />
        <Stat label="started" value={r.started_at || '—'} />
        <Stat label="duration" value={formatDuration(r.duration)} />
        <Stat label="version" value={r.version} />
      </div>
      {r.error ? <pre className="mlscale-error-text">{r.error}</pre> : null}
      <table className="mlscale-table">
        <tbody>
          {Object.entries(r.parameters || {}).map(([k, v]) => (
            <tr key={`p${k}`}>
              <th>parameter {k}</th>
              <td>{JSON.stringify(v)}</td>
            </tr>
          ))}
          {Object.entries(r.metrics || {}).map(([k, v]) => (
            <tr key={`m${k}`}>
              <th>metric {k}</th>
              <td>{formatMetric(Number(v))}</td>
            </tr>
          ))}
          {(r.attempts || []).map((a, i) => (
            <tr key={`a${i}`}>
              <th>attempt {String(a.attempt ?? i + 1)}</th>
              <td>
                {String(a.status ?? '')} {a.error ? errorSummary(String(a.error)) : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {r.environment_note ? <div className="mlscale-meta">{r.environment_note}</div> : null}
      <RunLinks run={r} actions={props.actions} />
    </div>
  );
}

function RunLinks(props: { run: Run; actions: JobActions }): JSX.Element {
  const r = props.run;
  const done = !['queued', 'running'].includes(r.status);
  return (
    <span className="mlscale-run-links">
      {done ? (
        <a
          href="#"
          className="mlscale-open-output"
          onClick={e => {
            e.preventDefault();
            props.actions.openOutput(r).catch(showError);
          }}
        >
          output
        </a>
      ) : null}
      {r.mlflow_run_id ? (
        <a
          className="mlscale-mlflow-link"
          href={`${MLFLOW_UI}/#/runs/${encodeURIComponent(r.mlflow_run_id)}`}
          target="_blank"
          rel="noreferrer"
          title={`MLflow run ${r.mlflow_run_id} in the MLflow UI (start it with \`mlscale mlflow-ui\`)`}
        >
          MLflow run
        </a>
      ) : null}
    </span>
  );
}

/** The runs of a job, newest first; a click shows one run's details. */
function RunsTable(props: { runs: Run[]; actions: JobActions }): JSX.Element {
  const [open, setOpen] = React.useState<string | null>(null);
  const shown = props.runs.find(r => r.id === open);
  return (
    <div>
      <table className="mlscale-table mlscale-runs">
        <thead>
          <tr>
            <th>status</th>
            <th>attempt</th>
            <th>started</th>
            <th>duration</th>
            <th>parameters</th>
            <th>error</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {props.runs.map(r => (
            <tr
              key={r.id}
              className={`mlscale-run ${r.id === open ? 'mlscale-selected' : ''}`}
              data-run={r.id}
              data-status={r.status}
              onClick={() => setOpen(r.id === open ? null : r.id)}
            >
              <td>
                <Badge status={r.status} />
              </td>
              <td>{r.attempt}</td>
              <td title={r.started_at || ''}>{formatWhen(r.started_at || r.queued_at)}</td>
              <td>{formatDuration(r.duration)}</td>
              <td className="mlscale-params">
                {Object.entries(r.parameters || {})
                  .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
                  .join(', ')}
              </td>
              <td className="mlscale-error-summary">{errorSummary(r.error)}</td>
              <td onClick={e => e.stopPropagation()}>
                <RunLinks run={r} actions={props.actions} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {!props.runs.length ? <i className="mlscale-empty">no runs yet</i> : null}
      {shown ? <RunDetail run={shown} actions={props.actions} /> : null}
    </div>
  );
}

/** The metric picker and its chart over the runs (oldest first). */
function MetricsPlot(props: { runs: Run[] }): JSX.Element {
  const names = Array.from(new Set(props.runs.flatMap(r => Object.keys(r.metrics || {}))));
  const [metric, setMetric] = React.useState('');
  if (!names.length) return <i className="mlscale-empty">no metrics logged by these runs</i>;
  const m = names.includes(metric) ? metric : names[0];
  const values = props.runs
    .slice()
    .reverse()
    .filter(r => m in (r.metrics || {}))
    .map(r => ({ value: Number(r.metrics[m]), label: runLabel(r) }));
  return (
    <div className="mlscale-metrics">
      <select
        className="mlscale-metric jp-mod-styled"
        value={m}
        onChange={e => setMetric(e.target.value)}
      >
        {names.map(n => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </select>
      <MetricChart metric={m} unit={metricUnit(m)} values={values} />
    </div>
  );
}

/** One job: its schedule and state, run now with overrides, pause/resume, delete, its metric chart and runs. */
export function JobView(props: {
  model: JobModel;
  actions: JobActions;
  onDeleted: () => void;
}): JSX.Element {
  const jm = props.model;
  const j = jm.job;
  if (!j)
    return (
      <div className="mlscale-job-view">
        {jm.error ? <div className="mlscale-status">{jm.error}</div> : 'loading…'}
      </div>
    );
  const remove = async () => {
    const res = await showDialog({
      title: `Delete job '${j.name}'?`,
      body: 'Its schedule and run records are removed; the run output folders are kept.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!res.button.accept) return;
    await jm.panel.deleteJob(j.name);
    props.onDeleted();
  };
  return (
    <div className="mlscale-job-view" data-name={j.name}>
      <h2>
        {j.name} <Badge status={j.paused ? 'paused' : j.last_run?.status} />
      </h2>
      {jm.error ? <div className="mlscale-status">error: {jm.error}</div> : null}
      <div className="mlscale-stats">
        <Stat
          label="schedule"
          value={scheduleInWords(j.spec.schedule, j.spec.timezone)}
          cls="mlscale-schedule"
        />
        <Stat label="next run" value={j.paused ? 'paused' : formatWhen(j.next_run_at)} />
        <Stat label="notebook" value={j.spec.notebook} />
        <Stat label="version" value={j.version} />
      </div>
      <div className="mlscale-controls">
        <ActionButton
          label={j.paused ? 'Resume' : 'Pause'}
          onClick={async () => {
            await jm.panel.setPaused(j.name, !j.paused);
            await jm.refresh();
          }}
        />
        <ActionButton label="Delete" className="mlscale-danger" onClick={remove} />
      </div>
      <h3>Run now</h3>
      <RunNowForm model={jm} />
      <h3>Metrics</h3>
      <MetricsPlot runs={jm.runs} />
      <h3>Runs</h3>
      <RunsTable runs={jm.runs} actions={props.actions} />
    </div>
  );
}
