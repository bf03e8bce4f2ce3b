import * as React from 'react';
import { formatWhen } from '../logic';
import { formatDuration, scheduleInWords } from '../view';
import type { Job, PanelModel } from '../model';
import { ActionButton, Badge, Section, Stat } from './common';

/** One job of the list: status, schedule in words, next run, last duration, and its quick actions. */
export const JobRow = React.memo(function JobRow(props: {
  job: Job;
  model: PanelModel;
}): JSX.Element {
  const j = props.job;
  const m = props.model;
  const last = j.last_run;
  return (
    <div className="mlscale-card mlscale-job" data-name={j.name}>
      <div className="mlscale-card-head">
        <a
          href="#"
          className="mlscale-job-name"
          onClick={e => {
            e.preventDefault();
            m.onOpenJob(j.name);
          }}
        >
          <b>{j.name}</b>
        </a>{' '}
        <Badge status={j.paused ? 'paused' : last?.status} />
        {j.status !== 'ok' ? <span className="mlscale-status"> {j.error || j.status}</span> : null}
      </div>
      <div className="mlscale-stats">
        <Stat
          label=""
          value={scheduleInWords(j.spec.schedule, j.spec.timezone)}
          cls="mlscale-schedule"
        />
        <Stat
          label="next"
          value={j.paused ? 'paused' : formatWhen(j.next_run_at)}
          cls="mlscale-next"
        />
        <Stat
          label="last"
          value={
            last
              ? `${formatWhen(last.started_at || last.queued_at)}, ${formatDuration(last.duration)}`
              : '—'
          }
          cls="mlscale-last"
        />
      </div>
      <div className="mlscale-controls">
        <ActionButton label="Run now" accept onClick={() => m.runNow(j.name)} />
        <ActionButton
          label={j.paused ? 'Resume' : 'Pause'}
          onClick={() => m.setPaused(j.name, !j.paused)}
        />
        <ActionButton
          label="History"
          onClick={() => m.onOpenJob(j.name)}
          title="runs, metrics and output of this job"
        />
      </div>
    </div>
  );
});

/** The Jobs section: every promoted notebook. */
export function JobsSection(props: { model: PanelModel }): JSX.Element {
  const s = props.model.state;
  return (
    <Section name="jobs" title="Jobs" error={s.errors.jobs || s.errors.runs}>
      {s.jobs.map(j => (
        <JobRow key={j.name} job={j} model={props.model} />
      ))}
      {s.loaded && !s.jobs.length ? (
        <i className="mlscale-empty">no jobs: use "Promote to job" on a notebook</i>
      ) : null}
    </Section>
  );
}
