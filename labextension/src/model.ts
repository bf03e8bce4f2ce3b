import { Notification, VDomModel } from '@jupyterlab/apputils';
import { api, poll, post } from './api';
import type { components } from './openapi';
import { adaptBody, promoteModelBody, runBody, scaleBody, statusBadge, FormField } from './logic';
import { endedRuns, mergeList } from './view';

type S = components['schemas'];
export type Cluster = S['ClusterOut'];
export type Profile = S['ProfileOut'];
export type Job = S['JobOut'];
export type Run = S['RunOut'];
export type Model = S['ModelOut'];
export type Promotion = S['PromotionOut'];

/** How often the panel asks the server (clusters and jobs answer 304 when nothing changed). */
export const POLL_MS = 4000;
/** Models (MLflow registry) are read every this many polls. */
const MODELS_EVERY = 3;

/** Throw the builder's error or return its body. */
export function built<T>(r: { body?: T; error?: string }): T {
  if (r.error || r.body === undefined) throw new Error(r.error || 'invalid input');
  return r.body;
}

const enc = encodeURIComponent;

/** What the panel shows; each poll replaces only the parts (and the items) that changed. */
export interface PanelState {
  profiles: Profile[];
  clusters: Cluster[];
  jobs: Job[];
  models: Model[];
  runMetrics: Record<string, Record<string, number>>; // MLflow run id -> metrics (of model versions)
  errors: Record<string, string>; // section -> last error
  loaded: boolean;
}

/** The panel's state, polled cheaply and updated in place; its actions call the REST API. */
export class PanelModel extends VDomModel {
  state: PanelState = {
    profiles: [],
    clusters: [],
    jobs: [],
    models: [],
    runMetrics: {},
    errors: {},
    loaded: false
  };
  /** Runs started from this Lab (run id -> job), for a notification when they end. */
  readonly watched = new Map<string, string>();
  /** Called with a job's name to show it (the plugin opens the job view). */
  onOpenJob: (name: string) => void = () => undefined;
  private tokens = { clusters: '', jobs: '' };
  private ticks = 0;
  private timer: number | undefined;
  private busy = false;
  private hidden = true;

  /** Replace parts of the state; listeners re-render only when one of them is a new value. */
  update(part: Partial<PanelState>): void {
    const s = this.state as unknown as Record<string, unknown>;
    const changed = Object.entries(part).some(([k, v]) => s[k] !== v);
    if (!changed) return;
    this.state = { ...this.state, ...part };
    this.stateChanged.emit(void 0);
  }

  start(): void {
    this.hidden = false;
    if (this.timer !== undefined) return;
    void this.refresh(true);
    this.timer = window.setInterval(() => void this.tick(), POLL_MS);
  }

  /** The panel is hidden: polls stop, once the runs started here have ended (their notifications still come). */
  stop(): void {
    this.hidden = true;
    if (!this.watched.size) this.clear();
  }

  private clear(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    if (this.hidden && !this.watched.size) this.clear();
    else void this.refresh();
  }

  dispose(): void {
    this.clear();
    super.dispose();
  }

  /** One poll: clusters and jobs (304 when unchanged), models every few polls, watched runs. */
  async refresh(all = false): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const models = all || this.ticks++ % MODELS_EVERY === 0;
      const errors: Record<string, string> = {};
      const part: Partial<PanelState> = {};
      await Promise.all([
        this.section('clusters', errors, () => this.pollClusters(part, all)),
        this.section('jobs', errors, () => this.pollJobs(part)),
        models ? this.section('models', errors, () => this.pollModels(part)) : null,
        this.section('runs', errors, () => this.checkWatched())
      ]);
      const old = this.state.errors;
      const same = JSON.stringify(old) === JSON.stringify(errors);
      this.update({ ...part, errors: same ? old : errors, loaded: true });
    } finally {
      this.busy = false;
    }
  }

  private async section(
    name: string,
    errors: Record<string, string>,
    fn: () => Promise<void>
  ): Promise<void> {
    try {
      await fn();
    } catch (e) {
      errors[name] = (e as Error).message;
    }
  }

  private async pollClusters(part: Partial<PanelState>, profiles: boolean): Promise<void> {
    if (profiles || !this.state.profiles.length) {
      const ps = await api<Profile[]>('clusters/profiles');
      part.profiles = mergeList(this.state.profiles, ps, p => p.name);
    }
    const r = await poll<Cluster[]>('clusters', this.tokens.clusters);
    this.tokens.clusters = r.token;
    if (!r.unchanged) part.clusters = mergeList(this.state.clusters, r.data || [], c => c.name);
  }

  private async pollJobs(part: Partial<PanelState>): Promise<void> {
    const r = await poll<Job[]>('jobs', this.tokens.jobs);
    this.tokens.jobs = r.token;
    if (!r.unchanged) part.jobs = mergeList(this.state.jobs, r.data || [], j => j.name);
  }

  private async pollModels(part: Partial<PanelState>): Promise<void> {
    const ms = await api<Model[]>('mlflow/models');
    const models = mergeList(this.state.models, ms, m => m.name);
    part.models = models;
    const want = models.flatMap(m => m.versions.map(v => v.run_id)).filter(Boolean) as string[];
    if (want.some(id => !(id in this.state.runMetrics))) {
      // the metrics of the versions' runs, for the side-by-side table (one call for the recent runs)
      const runs = await api<S['MlflowRunOut'][]>('mlflow/runs?limit=1000');
      part.runMetrics = Object.fromEntries(runs.map(r => [r.run_id, r.metrics]));
    }
  }

  /** A Lab notification for each run started here that has ended. */
  private async checkWatched(): Promise<void> {
    if (!this.watched.size) return;
    const runs = await Promise.all([...this.watched.keys()].map(id => api<Run>(`runs/${enc(id)}`)));
    for (const r of endedRuns(this.watched, runs)) {
      this.watched.delete(r.id);
      const msg = `mlscale: run of '${r.job}' ${statusBadge(r.status).label}`;
      const actions = [{ label: 'Show runs', callback: () => this.onOpenJob(r.job) }];
      if (r.status === 'succeeded') Notification.success(msg, { autoClose: 8000, actions });
      else
        Notification.error(`${msg}${r.error ? `: ${r.error}` : ''}`, { autoClose: false, actions });
    }
  }

  async startCluster(profile: string): Promise<void> {
    await post('clusters', { profile });
    await this.refresh(true);
  }

  async stopCluster(name: string): Promise<void> {
    await api(`clusters/${enc(name)}`, { method: 'DELETE' });
    await this.refresh();
  }

  async scale(name: string, n: string): Promise<void> {
    await post(`clusters/${enc(name)}/scale`, built(scaleBody(n)));
  }

  async adapt(name: string, minimum: string, maximum: string): Promise<void> {
    await post(`clusters/${enc(name)}/adapt`, built(adaptBody(minimum, maximum)));
  }

  /** Queue a run (with the typed parameter overrides) and watch it for a notification. */
  async runNow(job: string, fields: FormField[] = [], overrides: Record<string, string> = {}) {
    const { body, errors } = runBody(fields, overrides);
    if (!body) return { errors };
    const run = await post(`jobs/${enc(job)}/run`, body);
    if (run?.id) {
      this.watched.set(String(run.id), job);
      if (this.timer === undefined)
        this.timer = window.setInterval(() => void this.tick(), POLL_MS);
    }
    await this.refresh();
    return { errors: {}, run: run as Run };
  }

  async setPaused(job: string, paused: boolean): Promise<void> {
    await post(`jobs/${enc(job)}/${paused ? 'pause' : 'resume'}`);
    await this.refresh();
  }

  async deleteJob(job: string): Promise<void> {
    await api(`jobs/${enc(job)}`, { method: 'DELETE' });
    await this.refresh();
  }

  /** An audited promotion; the decision (promoted or rejected, with reasons) is returned to show. */
  async promoteModel(
    name: string,
    version: string,
    alias: string,
    metric: string,
    require: Record<string, string>,
    greaterIsBetter: boolean
  ): Promise<Promotion> {
    const body = built(promoteModelBody(version, alias, metric, require, greaterIsBetter));
    const d = await post(`mlflow/models/${enc(name)}/promote`, body);
    await this.refresh(true);
    return d as Promotion;
  }
}

/** One job's view: the job and its runs, polled while the view is open. */
export class JobModel extends VDomModel {
  job: Job | null = null;
  runs: Run[] = [];
  fields: FormField[] = [];
  error = '';
  private timer: number | undefined;
  private token = '';

  constructor(
    readonly name: string,
    readonly panel: PanelModel
  ) {
    super();
  }

  start(): void {
    if (this.timer !== undefined) return;
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
  }

  stop(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
  }

  dispose(): void {
    this.stop();
    super.dispose();
  }

  async refresh(): Promise<void> {
    try {
      const [job, runs] = await Promise.all([
        api<Job>(`jobs/${enc(this.name)}`),
        api<Run[]>(`jobs/${enc(this.name)}/history?limit=50`)
      ]);
      if (!this.fields.length) this.fields = await this.parameterFields(job);
      const token = JSON.stringify([job, runs]);
      if (token === this.token && !this.error) return;
      this.token = token;
      this.job = job;
      this.runs = mergeList(this.runs, runs, r => r.id);
      this.error = '';
      // the sidebar shows the same job: bring it along rather than up to a poll later
      const shown = this.panel.state.jobs.find(x => x.name === this.name);
      if (shown && JSON.stringify(shown.last_run) !== JSON.stringify(job.last_run))
        void this.panel.refresh();
    } catch (e) {
      this.error = (e as Error).message;
    }
    this.stateChanged.emit(void 0);
  }

  /** The notebook's parameters (for run-now overrides), with the values the job was promoted with. */
  private async parameterFields(job: Job): Promise<FormField[]> {
    const given = job.spec.parameters || {};
    let declared: Record<string, S['ParameterOut']> = {};
    try {
      declared = (
        await api<S['NotebookParametersOut']>(`notebooks/parameters?path=${enc(job.spec.notebook)}`)
      ).parameters;
    } catch {
      declared = {}; // the notebook moved or is outside the root: the job's own parameters only
    }
    const names = [...new Set([...Object.keys(declared), ...Object.keys(given)])];
    return names.map(n => {
      const v = given[n];
      const type =
        declared[n]?.type ||
        (typeof v === 'boolean'
          ? 'bool'
          : typeof v === 'number'
            ? Number.isInteger(v)
              ? 'int'
              : 'float'
            : 'str');
      const shown =
        v !== undefined ? String(v) : (declared[n]?.default ?? '').replace(/^(['"])(.*)\1$/, '$2');
      return {
        name: n,
        type,
        value: type === 'bool' ? shown.replace(/^t/, 'T').replace(/^f/, 'F') : shown,
        help: declared[n]?.help || ''
      };
    });
  }
}
