// Pure front-end logic (no DOM, no Jupyter imports): unit-tested with node --test.

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

export interface PromoteForm {
  notebook: string;
  name: string;
  schedule: string;
  timezone: string;
  cluster: string;
  retries: string;
  timeout: string;
  alertEmail: string;
  params: Record<string, string>;
}

/** Build the POST /jobs body from the dialog, or the list of field errors. */
export function promoteBody(
  form: PromoteForm,
  fields: FormField[]
): { body?: Record<string, unknown>; errors: Record<string, string> } {
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
  if (form.alertEmail && !/^[^@\s]+@[^@\s]+$/.test(form.alertEmail.trim())) {
    errors.alertEmail = 'alert e-mail: not an address';
  }
  if (Object.keys(errors).length) return { errors };
  const body: Record<string, unknown> = {
    notebook: form.notebook,
    schedule: sched || null,
    timezone: form.timezone.trim() || 'UTC',
    parameters,
    retries,
    timeout
  };
  if (form.name) body.name = form.name;
  if (form.cluster) body.cluster = form.cluster;
  if (form.alertEmail.trim()) {
    body.on_failure = [{ action: 'email', to: form.alertEmail.trim() }];
  }
  return { body, errors };
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
