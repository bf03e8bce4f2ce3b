import * as React from 'react';
import { clientCode, formatBytes, formatWhen } from '../logic';
import { formatDuration } from '../view';
import type { Cluster, PanelModel, Profile } from '../model';
import { DashboardPlot, PLOTS } from '../dashboard';
import { ActionButton, Section, Stat } from './common';

/** What a cluster card needs from Lab: open a dashboard plot, insert code into the open notebook. */
export interface ClusterActions {
  openPlot: (cluster: Cluster, plot: DashboardPlot) => void;
  insertCode: (code: string) => void;
}

/** The profile picker and Start button; the choice survives every poll (React keeps the select's state). */
function StartRow(props: { profiles: Profile[]; model: PanelModel }): JSX.Element {
  const [profile, setProfile] = React.useState('auto');
  const names = ['auto', ...props.profiles.map(p => p.name)];
  return (
    <div className="mlscale-row mlscale-start">
      <select
        className="mlscale-profile jp-mod-styled"
        value={names.includes(profile) ? profile : 'auto'}
        onChange={e => setProfile(e.target.value)}
        title="cluster profile"
      >
        {names.map(n => (
          <option key={n} value={n}>
            {n === 'auto' ? 'auto (GPU if present)' : n}
          </option>
        ))}
      </select>
      <ActionButton label="Start" accept onClick={() => props.model.startCluster(profile)} />
    </div>
  );
}

/** Idle shutdown countdown, or how long the cluster has run. */
function lifetime(c: Cluster): string {
  if (c.idle_left !== null && c.idle_left !== undefined)
    return `idle shutdown in ${formatDuration(c.idle_left)}`;
  return `up ${formatWhen(c.started_at).replace(/ ago$/, '')}`;
}

/**
 * One running cluster: its figures (updated each poll) and its inputs, whose typed values live in this
 * component's state, so an update never wipes a worker count being typed.
 */
export const ClusterCard = React.memo(function ClusterCard(props: {
  cluster: Cluster;
  model: PanelModel;
  actions: ClusterActions;
}): JSX.Element {
  const c = props.cluster;
  // null until typed: the input follows the cluster's worker count; once typed, it keeps what was typed
  const [typed, setN] = React.useState<string | null>(null);
  const n = typed ?? String(c.workers ?? 1);
  const [lo, setLo] = React.useState('0');
  const m = props.model;
  const used = c.memory_used;
  return (
    <div className="mlscale-card mlscale-cluster" data-name={c.name}>
      <div className="mlscale-card-head">
        <b>{c.name}</b> <span className="mlscale-tag">{c.profile}</span>
        {c.gpu ? <span className="mlscale-tag">GPU</span> : null}
      </div>
      <div className="mlscale-stats">
        <span className="mlscale-workers">{c.workers ?? '?'} workers</span>
        <Stat label="threads" value={c.threads ?? '?'} />
        <Stat
          label={used !== undefined && used !== null ? 'memory in use' : 'memory'}
          value={
            used !== undefined && used !== null
              ? `${formatBytes(used)} / ${formatBytes(c.memory)}`
              : formatBytes(c.memory)
          }
          cls="mlscale-memory"
        />
        <Stat label="" value={lifetime(c)} cls="mlscale-idle" />
        {c.cost !== null && c.cost !== undefined ? (
          <Stat label="cost" value={c.cost.toFixed(2)} cls="mlscale-cost" />
        ) : null}
        {c.core_hours !== null && c.core_hours !== undefined ? (
          <Stat label="core-h" value={c.core_hours.toFixed(2)} />
        ) : null}
      </div>
      <div className="mlscale-controls">
        <label title="workers (scale to this many, or the adaptive maximum)">
          <input
            type="number"
            min="0"
            className="mlscale-n jp-mod-styled"
            value={n}
            onChange={e => setN(e.target.value)}
          />
        </label>
        <ActionButton label="Scale" accept onClick={() => m.scale(c.name, n)} />
        <label title="adaptive minimum">
          min
          <input
            type="number"
            min="0"
            className="mlscale-min jp-mod-styled"
            value={lo}
            onChange={e => setLo(e.target.value)}
          />
        </label>
        <ActionButton
          label="Adapt"
          onClick={() => m.adapt(c.name, lo, n)}
          title={`adapt between min and ${n} workers`}
        />
      </div>
      <div className="mlscale-controls">
        {c.dashboard_proxy
          ? (Object.keys(PLOTS) as DashboardPlot[]).map(p => (
              <ActionButton
                key={p}
                label={PLOTS[p].label}
                className="mlscale-plot"
                onClick={() => props.actions.openPlot(c, p)}
              />
            ))
          : null}
        {c.dashboard_link ? (
          <a href={c.dashboard_link} target="_blank" rel="noreferrer" className="mlscale-link">
            dashboard
          </a>
        ) : null}
      </div>
      <div className="mlscale-controls">
        <ActionButton
          label="Insert client code"
          onClick={() => props.actions.insertCode(clientCode(c.name, c.scheduler_address))}
        />
        <ActionButton
          label="Stop"
          className="mlscale-danger"
          onClick={() => m.stopCluster(c.name)}
        />
      </div>
    </div>
  );
});

/** The Clusters section: start a cluster from a profile; a card per running cluster. */
export function ClustersSection(props: {
  model: PanelModel;
  actions: ClusterActions;
}): JSX.Element {
  const s = props.model.state;
  return (
    <Section name="clusters" title="Clusters" error={s.errors.clusters}>
      <StartRow profiles={s.profiles} model={props.model} />
      {s.clusters.map(c => (
        <ClusterCard key={c.name} cluster={c} model={props.model} actions={props.actions} />
      ))}
      {s.loaded && !s.clusters.length ? <i className="mlscale-empty">no clusters running</i> : null}
    </Section>
  );
}
