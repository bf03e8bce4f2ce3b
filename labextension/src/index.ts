import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  Notification,
  showDialog,
  ToolbarButton
} from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';
import { api, post } from './api';
import { openDashboardPlot, registerDashboardCommand, DashboardPlot, PLOTS } from './dashboard';
import {
  clientCode,
  formatBytes,
  formatWhen,
  paramFields,
  adaptBody,
  promoteBody,
  promoteModelBody,
  scaleBody,
  sparkline,
  statusBadge,
  DRIFT_STATS,
  FormField,
  OPS,
  PromoteForm,
  RuleForm
} from './logic';

/** Throw the builder's error (shown by `button`) or return its body. */
function built<T>(r: { body?: T; error?: string }): T {
  if (r.error || r.body === undefined) throw new Error(r.error || 'invalid input');
  return r.body;
}

const PROMOTE = 'mlscale:promote-to-job';
const POLL_MS = 4000;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function button(
  label: string,
  onClick: () => Promise<unknown> | void,
  cls = ''
): HTMLButtonElement {
  const b = el('button', { class: `jp-Button mlscale-btn ${cls}`, title: label }, label);
  b.onclick = async () => {
    b.disabled = true;
    try {
      await onClick();
    } catch (e) {
      void showDialog({
        title: 'mlscale',
        body: (e as Error).message,
        buttons: [Dialog.okButton()]
      });
    } finally {
      b.disabled = false;
    }
  };
  return b;
}

/** The left sidebar: clusters, jobs and models, refreshed by polling. */
class MlscalePanel extends Widget {
  private clusters = el('div', { class: 'mlscale-section-body', 'data-section': 'clusters' });
  private jobs = el('div', { class: 'mlscale-section-body', 'data-section': 'jobs' });
  private models = el('div', { class: 'mlscale-section-body', 'data-section': 'models' });
  private status = el('div', { class: 'mlscale-status' });
  private clusterHead: HTMLElement | null = null;
  private clusterRows = new Map<string, HTMLElement>();
  private watched = new Map<string, string>(); // run id -> job, for runs started here
  private noClusters = el('i', {}, 'no clusters running');
  private timer: number | undefined;
  private metric = '';

  constructor(
    private app: JupyterFrontEnd,
    private tracker: INotebookTracker
  ) {
    super();
    this.id = 'mlscale-panel';
    this.title.caption = 'mlscale';
    this.title.label = 'mlscale';
    this.addClass('mlscale-panel');
    const sec = (name: string, body: HTMLElement) =>
      el('section', { class: 'mlscale-section' }, el('h3', {}, name), body);
    this.node.append(
      sec('Clusters', this.clusters),
      sec('Jobs', this.jobs),
      sec('Models', this.models),
      this.status
    );
  }

  protected onAfterShow(): void {
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), POLL_MS);
  }
  protected onAfterHide(): void {
    window.clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const parts = await Promise.allSettled([
      this.renderClusters(),
      this.renderJobs(),
      this.renderModels()
    ]);
    const bad = parts.filter(p => p.status === 'rejected') as PromiseRejectedResult[];
    this.status.textContent = bad.length
      ? `error: ${bad.map(b => b.reason?.message).join('; ')}`
      : '';
  }

  private async renderClusters(): Promise<void> {
    const [profiles, recs] = await Promise.all([
      api<any[]>('clusters/profiles'),
      api<any[]>('clusters')
    ]);
    if (!this.clusterHead) {
      const select = el('select', { class: 'mlscale-profile' });
      const start = button('Start', async () => {
        await post('clusters', { profile: select.value });
        await this.renderClusters();
      });
      this.clusterHead = el('div', { class: 'mlscale-row' }, select, start);
    }
    const select = this.clusterHead.querySelector('select')!;
    // "auto" first: local-gpu when GPUs are visible, else local (the server says which and why)
    const names = ['auto', ...profiles.map(p => p.name)];
    if (
      Array.from(select.options)
        .map(o => o.value)
        .join() !== names.join()
    ) {
      const picked = select.value;
      select.replaceChildren(
        ...names.map(n => el('option', { value: n }, n === 'auto' ? 'auto (GPU if present)' : n))
      );
      if (names.includes(picked)) select.value = picked;
    }
    // rows are updated in place: a worker count being typed (and its focus) survives each poll
    const seen = new Set<string>();
    for (const r of recs) {
      seen.add(r.name);
      const row = this.clusterRows.get(r.name) || this.clusterRow(r);
      this.clusterRows.set(r.name, row);
      row.querySelector('.mlscale-workers')!.textContent = `${r.workers ?? '?'} workers`;
      row.querySelector('.mlscale-cluster-info')!.textContent =
        `, ${r.threads ?? '?'} threads, ${formatBytes(r.memory)}`;
    }
    for (const name of [...this.clusterRows.keys()])
      if (!seen.has(name)) this.clusterRows.delete(name);
    const want: Node[] = [this.clusterHead, ...this.clusterRows.values()];
    if (!this.clusterRows.size) want.push(this.noClusters);
    const have = Array.from(this.clusters.childNodes);
    if (have.length !== want.length || have.some((n, i) => n !== want[i])) {
      this.clusters.replaceChildren(...want);
    }
  }

  private clusterRow(r: any): HTMLElement {
    const n = el('input', {
      type: 'number',
      min: '0',
      value: String(r.workers ?? 1),
      class: 'mlscale-n'
    });
    const row = el(
      'div',
      { class: 'mlscale-row mlscale-cluster', 'data-name': r.name },
      el('b', {}, r.name),
      ` [${r.profile}] `,
      el('span', { class: 'mlscale-workers' }),
      el('span', { class: 'mlscale-cluster-info' }),
      el('br'),
      n,
      button('Scale', () =>
        post(`clusters/${encodeURIComponent(r.name)}/scale`, built(scaleBody(n.value)))
      ),
      button('Adapt', () =>
        post(`clusters/${encodeURIComponent(r.name)}/adapt`, built(adaptBody('0', n.value)))
      ),
      button('Insert client code', () => this.insertCode(clientCode(r.name, r.scheduler_address))),
      button(
        'Stop',
        async () => {
          await api(`clusters/${encodeURIComponent(r.name)}`, { method: 'DELETE' });
          await this.renderClusters();
        },
        'mlscale-danger'
      )
    );
    if (r.dashboard_link)
      row.append(el('a', { href: r.dashboard_link, target: '_blank' }, 'dashboard'));
    if (r.dashboard_proxy)
      for (const [plot, { label }] of Object.entries(PLOTS))
        row.append(
          button(
            label,
            () => void openDashboardPlot(this.app, r, plot as DashboardPlot),
            'mlscale-plot'
          )
        );
    return row;
  }

  /** A Lab notification when a run started from this Lab ends (success or failure). */
  private notifyEnded(jobs: any[]): void {
    for (const j of jobs) {
      const last = j.last_run;
      if (!last || !this.watched.has(String(last.id))) continue;
      if (['queued', 'running'].includes(last.status)) continue;
      this.watched.delete(String(last.id));
      const msg = `mlscale: run of '${j.name}' ${statusBadge(last.status).label}`;
      if (last.status === 'succeeded') Notification.success(msg, { autoClose: 8000 });
      else Notification.error(`${msg}${last.error ? `: ${last.error}` : ''}`, { autoClose: false });
    }
  }

  private insertCode(code: string): void {
    const panel = this.tracker.currentWidget;
    if (!panel) throw new Error('open a notebook first');
    const nb = panel.content;
    void this.app.commands.execute('notebook:insert-cell-below').then(() => {
      if (nb.activeCell) nb.activeCell.model.sharedModel.setSource(code);
    });
  }

  private async renderJobs(): Promise<void> {
    const jobs = await api<any[]>('jobs');
    this.notifyEnded(jobs);
    const rows = jobs.map(j => {
      const last = j.last_run;
      const badge = statusBadge(j.paused ? 'paused' : last?.status);
      const hist = el('div', { class: 'mlscale-history' });
      const row = el(
        'div',
        { class: 'mlscale-row mlscale-job', 'data-name': j.name },
        el('b', {}, j.name),
        ' ',
        el('span', { class: `mlscale-badge mlscale-${badge.cls}` }, badge.label),
        el(
          'div',
          { class: 'mlscale-meta' },
          `next: ${j.paused ? 'paused' : formatWhen(j.next_run_at)}`
        ),
        button('Run now', async () => {
          const run = await post(`jobs/${encodeURIComponent(j.name)}/run`, {});
          if (run?.id) this.watched.set(String(run.id), j.name);
        }),
        button(j.paused ? 'Resume' : 'Pause', () =>
          post(`jobs/${encodeURIComponent(j.name)}/${j.paused ? 'resume' : 'pause'}`)
        ),
        button('History', () => this.renderHistory(j.name, hist)),
        hist
      );
      return row;
    });
    this.jobs.replaceChildren(
      ...(rows.length ? rows : [el('i', {}, 'no jobs: use "Promote to job" on a notebook')])
    );
  }

  private async renderHistory(name: string, into: HTMLElement): Promise<void> {
    const runs = await api<any[]>(`jobs/${encodeURIComponent(name)}/history?limit=20`);
    const metrics = Array.from(new Set(runs.flatMap(r => Object.keys(r.metrics || {}))));
    if (!this.metric || !metrics.includes(this.metric)) this.metric = metrics[0] || '';
    const pick = el('select', { class: 'mlscale-metric' });
    for (const m of metrics) pick.append(el('option', { value: m }, m));
    pick.value = this.metric;
    pick.onchange = () => {
      this.metric = pick.value;
      void this.renderHistory(name, into);
    };
    const values = runs
      .slice()
      .reverse()
      .map(r => Number((r.metrics || {})[this.metric]));
    const pts = sparkline(values, 150, 34);
    // a dot per run (one run alone is a dot, not an invisible line), inset so none is clipped
    const dots = pts
      .split(' ')
      .filter(Boolean)
      .map(p => p.split(','))
      .map(([x, y]) => `<circle cx="${x}" cy="${y}" r="2.5" fill="currentColor"/>`)
      .join('');
    const svg = `<svg width="160" height="40" class="mlscale-plot"><g transform="translate(5,3)"><polyline fill="none" stroke="currentColor" points="${pts}"/>${dots}</g></svg>`;
    const finite = values.filter(v => isFinite(v));
    const plot = el('div', { class: 'mlscale-plot-box' });
    plot.innerHTML = metrics.length ? svg : '';
    if (finite.length)
      plot.append(
        el('span', { class: 'mlscale-meta' }, ` latest ${finite[finite.length - 1].toPrecision(4)}`)
      );
    const items = runs.map(r => {
      const b = statusBadge(r.status);
      const li = el(
        'li',
        { class: 'mlscale-run', 'data-run': r.id },
        el('span', { class: `mlscale-badge mlscale-${b.cls}` }, b.label),
        ` ${formatWhen(r.started_at)} `
      );
      if (r.status !== 'queued' && r.status !== 'running') {
        const a = el('a', { href: '#', class: 'mlscale-open-output' }, 'output');
        a.onclick = async ev => {
          ev.preventDefault();
          const out = await api<any>(`runs/${encodeURIComponent(r.id)}/output`);
          await this.app.commands.execute('docmanager:open', { path: out.path });
        };
        li.append(a);
      }
      return li;
    });
    into.replaceChildren(...(metrics.length ? [pick, plot] : []), el('ul', {}, ...items));
  }

  private async renderModels(): Promise<void> {
    const models = await api<any[]>('mlflow/models');
    const rows = models.map(m => {
      const versions = (m.versions || m.latest_versions || []) as any[];
      const aliases = Object.entries(m.aliases || {})
        .map(([a, v]) => `${a}→v${v}`)
        .join(', ');
      const alias = el('input', { value: 'champion', class: 'mlscale-alias', size: '8' });
      const metric = el('input', {
        value: Object.keys(versions[0]?.metrics || {})[0] || '',
        placeholder: 'metric',
        class: 'mlscale-metric-name',
        size: '8'
      });
      const ver = el('select', {});
      for (const v of versions)
        ver.append(el('option', { value: String(v.version) }, `v${v.version}`));
      return el(
        'div',
        { class: 'mlscale-row mlscale-model', 'data-name': m.name },
        el('b', {}, m.name),
        ` ${versions.length} version(s) `,
        el('span', { class: 'mlscale-meta' }, aliases),
        el('br'),
        ver,
        alias,
        metric,
        button('Promote', async () => {
          const d = await post(
            `mlflow/models/${encodeURIComponent(m.name)}/promote`,
            built(promoteModelBody(ver.value, alias.value, metric.value))
          );
          void showDialog({
            title: 'Promotion',
            body: JSON.stringify(d),
            buttons: [Dialog.okButton()]
          });
        })
      );
    });
    this.models.replaceChildren(...(rows.length ? rows : [el('i', {}, 'no registered models')]));
  }
}

/** The body of the "Promote to job" dialog. */
class PromoteBody extends Widget {
  inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  params: Record<string, HTMLInputElement> = {};
  errors: Record<string, HTMLElement> = {};
  general = el('div', { class: 'mlscale-error mlscale-error-general' });

  constructor(
    public notebook: string,
    public fields: FormField[],
    profiles: string[],
    prev?: PromoteForm,
    prevRaw: Record<string, string> = {}
  ) {
    super();
    this.addClass('mlscale-promote');
    const stem = notebook
      .split('/')
      .pop()!
      .replace(/\.ipynb$/, '')
      .replace(/[^A-Za-z0-9_.-]/g, '-');
    const add = (key: string, label: string, input: HTMLInputElement | HTMLSelectElement) => {
      input.setAttribute('name', key);
      this.errors[key] = el('div', { class: 'mlscale-error', 'data-error': key });
      this.node.append(el('label', {}, label, input), this.errors[key]);
      return input;
    };
    this.inputs.name = add('name', 'Name', el('input', { value: stem }));
    this.inputs.schedule = add(
      'schedule',
      'Schedule (cron)',
      el('input', { placeholder: '0 3 * * *' })
    );
    this.inputs.timezone = add('timezone', 'Time zone', el('input', { value: 'UTC' }));
    const cl = el('select', {});
    cl.append(el('option', { value: '' }, '(none)'));
    for (const p of profiles) cl.append(el('option', { value: p }, p));
    this.inputs.cluster = add('cluster', 'Cluster profile', cl);
    this.inputs.retries = add(
      'retries',
      'Retries',
      el('input', { type: 'number', value: '0', min: '0' })
    );
    this.inputs.timeout = add(
      'timeout',
      'Timeout (s)',
      el('input', { type: 'number', placeholder: 'none' })
    );
    this.inputs.alertEmail = add(
      'alertEmail',
      'Alert e-mail on failure',
      el('input', { placeholder: 'you@example.com' })
    );
    this.inputs.alertWebhook = add(
      'alertWebhook',
      'Alert webhook on failure',
      el('input', { placeholder: 'https://hooks.example.com/… or ${HOOK_URL}' })
    );
    this.node.append(el('h4', {}, 'Alert rule'));
    const sel = (opts: string[]) => {
      const x = el('select', {});
      for (const o of opts) x.append(el('option', { value: o }, o || '(none)'));
      return x;
    };
    this.inputs.ruleKind = add('ruleKind', 'Rule', sel(['', 'metric', 'drift']));
    this.inputs.ruleMetric = add('ruleMetric', 'Metric', el('input', { placeholder: 'auc' }));
    this.inputs.ruleOp = add('ruleOp', 'Breach when', sel(OPS));
    this.inputs.ruleThreshold = add(
      'ruleThreshold',
      'Threshold',
      el('input', { placeholder: '0.8' })
    );
    this.inputs.ruleColumn = add(
      'ruleColumn',
      'Drift column',
      el('input', { placeholder: 'amount' })
    );
    this.inputs.ruleStat = add('ruleStat', 'Drift statistic', sel(DRIFT_STATS));
    this.inputs.ruleCondition = add(
      'ruleCondition',
      'Drift condition',
      el('input', { placeholder: '> 0.2' })
    );
    this.inputs.ruleAction = add('ruleAction', 'Then', sel(['email', 'webhook', 'retrain']));
    this.inputs.ruleTarget = add(
      'ruleTarget',
      'To (address, URL or job)',
      el('input', { placeholder: 'you@example.com' })
    );
    this.errors.rule0 = el('div', { class: 'mlscale-error', 'data-error': 'rule0' });
    this.node.append(this.errors.rule0);
    this.node.append(el('h4', {}, 'Parameters'));
    for (const f of fields) {
      this.params[f.name] = add(
        f.name,
        `${f.name} (${f.type})`,
        el('input', { value: f.value, title: f.help })
      ) as HTMLInputElement;
    }
    if (!fields.length) this.node.append(el('i', {}, 'no parameters cell'));
    this.node.prepend(this.general);
    if (prev) {
      for (const [k, i] of Object.entries(this.inputs))
        i.value = prevRaw[k] ?? (prev as any)[k] ?? i.value;
      for (const [k, i] of Object.entries(this.params)) i.value = prev.params[k] ?? i.value;
    }
  }

  /** What is typed in every input, by name (to show the dialog again as it was). */
  raw(): Record<string, string> {
    return Object.fromEntries(Object.entries(this.inputs).map(([k, i]) => [k, i.value]));
  }

  form(): PromoteForm {
    const v = (k: string) => this.inputs[k].value;
    const params: Record<string, string> = {};
    for (const [k, i] of Object.entries(this.params)) params[k] = i.value;
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
        actions: v('ruleTarget').trim() ? [{ kind: action, target: v('ruleTarget') }] : []
      }
    ];
  }

  showErrors(errors: Record<string, string>, general = ''): void {
    for (const [k, e] of Object.entries(this.errors)) e.textContent = errors[k] || '';
    const n = Object.keys(errors).length;
    // a summary at the top, so an error below the fold is not missed
    this.general.textContent =
      general || (n ? `${n} field(s) need a fix: ${Object.values(errors).join('; ')}` : '');
    if (general || n) this.general.scrollIntoView?.({ block: 'nearest' });
  }
}

async function promoteDialog(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  panelWidget: MlscalePanel
): Promise<void> {
  await panel.context.save();
  const path = panel.context.path;
  let fields: FormField[] = [];
  try {
    const info = await api<any>(`notebooks/parameters?path=${encodeURIComponent(path)}`);
    fields = paramFields(info.parameters);
  } catch {
    fields = [];
  }
  const profiles = (await api<any[]>('clusters/profiles')).map(p => p.name);
  let body = new PromoteBody(path, fields, profiles);
  // show the dialog again (with what was typed) until the server accepts the job, errors inline
  for (;;) {
    const res = await showDialog({
      title: 'Promote to job',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })]
    });
    if (!res.button.accept) return;
    const form = body.form();
    body = new PromoteBody(path, fields, profiles, form, body.raw());
    const { body: req, errors } = promoteBody(form, fields);
    if (!req) {
      body.showErrors(errors);
      continue;
    }
    try {
      const job = await post('jobs', req);
      void showDialog({
        title: 'Promoted',
        body: `job ${job.name}: next run ${job.next_run_at || 'on demand'}`,
        buttons: [Dialog.okButton()]
      });
      void panelWidget.refresh();
      return;
    } catch (e) {
      body.showErrors({}, (e as Error).message);
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'mlscale-labextension:plugin',
  description: 'mlscale sidebar and Promote to job',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new MlscalePanel(app, tracker);
    app.shell.add(panel, 'left', { rank: 900 });
    if (restorer) restorer.add(panel, 'mlscale-panel');
    app.commands.addCommand(PROMOTE, {
      label: 'Promote to job',
      caption: 'Schedule this notebook as an mlscale job',
      isEnabled: () => !!tracker.currentWidget,
      execute: () => {
        const nb = tracker.currentWidget;
        if (nb) return promoteDialog(app, nb, panel);
      }
    });
    if (palette) palette.addItem({ command: PROMOTE, category: 'mlscale' });
    registerDashboardCommand(app, palette);
    tracker.widgetAdded.connect((_, nb) => {
      const btn = new ToolbarButton({
        label: 'Promote to job',
        className: 'mlscale-promote-button',
        tooltip: 'Schedule this notebook as an mlscale job',
        onClick: () => void app.commands.execute(PROMOTE)
      });
      nb.toolbar.insertItem(10, 'mlscale-promote', btn);
    });
  }
};

export default plugin;
