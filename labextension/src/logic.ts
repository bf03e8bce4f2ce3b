// Pure front-end logic (no DOM, no Jupyter imports): unit-tested with node --test.
import type { paths } from './openapi';

/** The JSON request body of an API route, from the types generated from openapi.yaml (`jlpm gen:types`). */
type JsonBody<T> = T extends { content: { 'application/json': infer B } } ? B : never;
export type RequestBody<P extends keyof paths, M extends keyof paths[P]> = JsonBody<
  NonNullable<paths[P][M] extends { requestBody?: infer R } ? R : never>
>;
export type PromoteJobBody = RequestBody<'/jobs', 'post'>;
export type ScaleBody = RequestBody<'/clusters/{name}/scale', 'post'>;
export type AdaptBody = RequestBody<'/clusters/{name}/adapt', 'post'>;
export type RunBody = RequestBody<'/jobs/{name}/run', 'post'>;
export type PromoteModelBody = RequestBody<'/mlflow/models/{name}/promote', 'post'>;
type Action = NonNullable<PromoteJobBody['on_failure']>[number];
type Rule = NonNullable<PromoteJobBody['alerts']>[number];

export interface ParamInfo {
  default?: string;
  type?: string;
  help?: string;
}

export interface FormField {
  name: string;
  type: string;
  value: string;
  help: string;
}

/** Form fields for the parameters a notebook declares (from GET notebooks/parameters). */
export function paramFields(params: Record<string, ParamInfo>): FormField[] {
  return Object.entries(params || {}).map(([name, p]) => ({
    name,
    type: p.type || 'str',
    value: unquote(p.default === undefined || p.default === null ? '' : String(p.default)),
    help: p.help || ''
  }));
}

function unquote(s: string): string {
  const t = s.trim();
  if (t.length >= 2 && (t[0] === "'" || t[0] === '"') && t[t.length - 1] === t[0]) {
    return t.slice(1, -1);
  }
  return t;
}

/** Convert one form value to the JSON value of its declared type; throws Error with a message. */
export function coerce(field: FormField, raw: string): unknown {
  const v = raw.trim();
  switch (field.type) {
    case 'int': {
      if (!/^[-+]?\d+$/.test(v))
        throw new Error(`${field.name}: expected an integer, got '${raw}'`);
      return parseInt(v, 10);
    }
    case 'float': {
      const n = Number(v);
      if (v === '' || !isFinite(n))
        throw new Error(`${field.name}: expected a number, got '${raw}'`);
      return n;
    }
    case 'bool': {
      if (/^(true|1|yes)$/i.test(v)) return true;
      if (/^(false|0|no)$/i.test(v)) return false;
      throw new Error(`${field.name}: expected True or False, got '${raw}'`);
    }
    default:
      return raw;
  }
}

/** One alert action as typed in the dialog: e-mail an address, POST to a webhook, or retrain a job. */
export interface ActionForm {
  kind: 'email' | 'webhook' | 'retrain';
  target: string; // address, URL (or ${ENV} reference) or job name
}

/** One alert rule as typed in the dialog: a metric threshold or a drift condition, with its actions. */
export interface RuleForm {
  kind: 'metric' | 'drift';
  metric: string; // metric rules: name as logged
  op: string; // metric rules: < <= > >= == !=
  threshold: string; // metric rules: a number
  column: string; // drift rules: the column
  stat: string; // drift rules: psi, ks, ks_pvalue or chi2_pvalue
  condition: string; // drift rules: e.g. '> 0.2'
  actions: ActionForm[];
}

export interface PromoteForm {
  notebook: string;
  name: string;
  schedule: string;
  timezone: string;
  cluster: string;
  retries: string;
  timeout: string;
  alertEmail: string;
  alertWebhook?: string;
  rules?: RuleForm[];
  params: Record<string, string>;
}

export const OPS = ['<', '<=', '>', '>=', '==', '!='];
export const DRIFT_STATS = ['psi', 'ks', 'ks_pvalue', 'chi2_pvalue'];
const EMAIL_RE = /^[^@\s]+@[^@\s]+$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const COND_RE = /^\s*(<=|>=|==|!=|<|>)\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$/;

/** The server's action mapping (`{email}`, `{webhook}`, `{retrain}`) for one action, or an error message. */
export function actionBody(a: ActionForm): { body?: Action; error?: string } {
  const t = (a.target || '').trim();
  if (a.kind === 'email') {
    return EMAIL_RE.test(t) ? { body: { email: t } } : { error: `e-mail: not an address: '${t}'` };
  }
  if (a.kind === 'webhook') {
    return /^https?:\/\/[^\s/]+/.test(t) || /^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/.test(t)
      ? { body: { webhook: t } }
      : { error: `webhook: an http(s) URL or a \${ENV} reference, got '${t}'` };
  }
  if (a.kind === 'retrain') {
    return NAME_RE.test(t)
      ? { body: { retrain: t } }
      : { error: `retrain: a job name, got '${t}'` };
  }
  return { error: `unknown action '${(a as ActionForm).kind}'` };
}

/** The server's rule mapping (`AlertRule`) for one rule, or an error message. */
export function ruleBody(r: RuleForm): { body?: Rule; error?: string } {
  const actions: Action[] = [];
  for (const a of r.actions || []) {
    const x = actionBody(a);
    if (x.error) return { error: x.error };
    actions.push(x.body!);
  }
  if (r.kind === 'drift') {
    if (!r.column.trim()) return { error: 'drift rule: a column' };
    if (!DRIFT_STATS.includes(r.stat))
      return { error: `drift rule: one of ${DRIFT_STATS.join(', ')}` };
    if (!COND_RE.test(r.condition)) return { error: `drift rule: a condition such as '> 0.2'` };
    return { body: { drift: { column: r.column.trim(), [r.stat]: r.condition.trim() }, actions } };
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.:/-]*$/.test(r.metric.trim()))
    return { error: 'metric rule: a metric name' };
  if (!OPS.includes(r.op)) return { error: `metric rule: an operator (${OPS.join(' ')})` };
  const thr = Number(r.threshold);
  if (r.threshold.trim() === '' || !isFinite(thr))
    return { error: 'metric rule: a numeric threshold' };
  return { body: { metric: r.metric.trim(), op: r.op as Rule['op'], threshold: thr, actions } };
}

/** Build the POST /jobs body from the dialog, or the list of field errors. */
export function promoteBody(
  form: PromoteForm,
  fields: FormField[]
): { body?: PromoteJobBody; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const parameters: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = form.params[f.name];
    if (raw === undefined || raw === f.value) continue; // unchanged: the notebook default applies
    try {
      parameters[f.name] = coerce(f, raw);
    } catch (e) {
      errors[f.name] = (e as Error).message;
    }
  }
  if (form.name && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(form.name)) {
    errors.name = 'name: letters, digits, _ . - only';
  }
  const sched = form.schedule.trim();
  if (sched && !sched.startsWith('@') && ![5, 6].includes(sched.split(/\s+/).length)) {
    errors.schedule = 'schedule: a cron expression has 5 or 6 fields';
  }
  const retries = form.retries.trim() === '' ? 0 : Number(form.retries);
  if (!Number.isInteger(retries) || retries < 0) errors.retries = 'retries: a whole number >= 0';
  const timeout = form.timeout.trim() === '' ? null : Number(form.timeout);
  if (timeout !== null && (!isFinite(timeout) || timeout <= 0)) {
    errors.timeout = 'timeout: seconds > 0';
  }
  const onFailure: Action[] = [];
  const failureActions: [string, ActionForm][] = [
    ['alertEmail', { kind: 'email', target: form.alertEmail }],
    ['alertWebhook', { kind: 'webhook', target: form.alertWebhook || '' }]
  ];
  for (const [key, a] of failureActions) {
    if (!a.target.trim()) continue;
    const x = actionBody(a);
    if (x.error) errors[key] = `alert ${x.error}`;
    else onFailure.push(x.body!);
  }
  const alerts: Rule[] = [];
  (form.rules || []).forEach((r, i) => {
    const x = ruleBody(r);
    if (x.error) errors[`rule${i}`] = x.error;
    else alerts.push(x.body!);
  });
  if (Object.keys(errors).length) return { errors };
  const body: PromoteJobBody = {
    notebook: form.notebook,
    schedule: sched || null,
    timezone: form.timezone.trim() || 'UTC',
    parameters,
    retries,
    timeout
  };
  if (form.name) body.name = form.name;
  if (form.cluster) body.cluster = form.cluster;
  if (onFailure.length) body.on_failure = onFailure;
  if (alerts.length) body.alerts = alerts;
  return { body, errors };
}

/** POST clusters/{name}/scale body from the typed worker count, or an error message. */
export function scaleBody(n: string): { body?: ScaleBody; error?: string } {
  const v = n.trim();
  return /^\d+$/.test(v)
    ? { body: { n: parseInt(v, 10) } }
    : { error: `workers: a whole number >= 0, got '${n}'` };
}

/** POST clusters/{name}/adapt body (between `minimum` and `maximum` workers), or an error message. */
export function adaptBody(minimum: string, maximum: string): { body?: AdaptBody; error?: string } {
  const lo = minimum.trim() === '' ? 0 : Number(minimum);
  const hi = Number(maximum);
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 0 || hi < lo) {
    return { error: `adapt: need 0 <= minimum <= maximum, got '${minimum}', '${maximum}'` };
  }
  return { body: { minimum: lo, maximum: hi } };
}

/** POST jobs/{name}/run body: the typed parameter overrides (unchanged ones left out), or field errors. */
export function runBody(
  fields: FormField[],
  overrides: Record<string, string>
): { body?: RunBody; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const parameters: Record<string, unknown> = {};
  for (const f of fields) {
    const raw = overrides[f.name];
    if (raw === undefined || raw === f.value) continue;
    try {
      parameters[f.name] = coerce(f, raw);
    } catch (e) {
      errors[f.name] = (e as Error).message;
    }
  }
  return Object.keys(errors).length ? { errors } : { body: { parameters }, errors };
}

/** POST mlflow/models/{name}/promote body: version, alias, and what decides (a metric and/or requirements). */
export function promoteModelBody(
  version: string,
  alias: string,
  metric: string,
  require: Record<string, string> = {},
  greaterIsBetter = true
): { body?: PromoteModelBody; error?: string } {
  const v = Number(version);
  if (!Number.isInteger(v) || v < 1)
    return { error: `version: a version number, got '${version}'` };
  const a = alias.trim() || 'champion';
  if (!/^[A-Za-z_][\w-]*$/.test(a))
    return { error: `alias: a letter or _ then letters, digits, _ -, got '${alias}'` };
  const m = metric.trim();
  if (!m && !Object.keys(require).length) {
    return { error: 'promote needs a metric to compare (or requirements such as auc >= 0.8)' };
  }
  for (const [k, r] of Object.entries(require)) {
    if (!COND_RE.test(r))
      return { error: `requirement ${k}: a condition such as '>= 0.8', got '${r}'` };
  }
  const body: PromoteModelBody = {
    version: v,
    alias: a,
    greater_is_better: greaterIsBetter
  };
  if (m) body.metric = m;
  if (Object.keys(require).length) body.require = require;
  return { body };
}
/** CSS modifier and label for a run status badge. */
export function statusBadge(status: string | null | undefined): { cls: string; label: string } {
  const s = status || 'never run';
  const cls =
    s === 'succeeded'
      ? 'ok'
      : ['failed', 'timed_out', 'interrupted'].includes(s)
        ? 'bad'
        : ['running', 'queued'].includes(s)
          ? 'busy'
          : 'idle';
  return { cls, label: s.replace('_', ' ') };
}

export function formatBytes(n: number | null | undefined): string {
  if (!n) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function formatWhen(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return '—';
  const d = new Date(iso);
  const s = Math.round((d.getTime() - now.getTime()) / 1000);
  const a = Math.abs(s);
  const txt =
    a < 60
      ? `${a}s`
      : a < 3600
        ? `${Math.round(a / 60)}m`
        : a < 86400
          ? `${Math.round(a / 3600)}h`
          : `${Math.round(a / 86400)}d`;
  return s >= 0 ? `in ${txt}` : `${txt} ago`;
}

/** SVG polyline points for a tiny metric plot (values oldest first). */
export function sparkline(values: number[], width = 160, height = 40): string {
  const vs = values.filter(v => typeof v === 'number' && isFinite(v));
  if (!vs.length) return '';
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  const span = hi - lo || 1;
  const step = vs.length > 1 ? width / (vs.length - 1) : 0;
  return vs
    .map((v, i) => `${(i * step).toFixed(1)},${(height - ((v - lo) / span) * height).toFixed(1)}`)
    .join(' ');
}

/** Python code that connects the notebook's kernel to a registered cluster. */
export function clientCode(name: string, address: string): string {
  return `from distributed import Client\nclient = Client(${JSON.stringify(address)})  # mlscale cluster ${JSON.stringify(name)}\nclient`;
}
