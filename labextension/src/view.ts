// Pure display logic of the panel's React views (no DOM, no Jupyter imports): unit-tested with node --test.
import { formatWhen } from './logic';

/** `next` with the items of `prev` kept (same object) where they did not change, matched by `key`. */
export function mergeList<T>(prev: T[], next: T[], key: (t: T) => string): T[] {
  const old = new Map(prev.map(p => [key(p), p]));
  const out = next.map(n => {
    const o = old.get(key(n));
    return o !== undefined && JSON.stringify(o) === JSON.stringify(n) ? o : n;
  });
  return out.length === prev.length && out.every((o, i) => o === prev[i]) ? prev : out;
}

/** A duration in seconds as a person reads it: 850 ms, 12.3 s, 4m 05s, 2h 03m, 3d 4h. */
export function formatDuration(s: number | null | undefined): string {
  if (s === null || s === undefined || !isFinite(s)) return '—';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.round(s % 60)).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *'
};

function ordinal(n: number): string {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : ['th', 'st', 'nd', 'rd'][n % 10] || 'th';
  return `${n}${s}`;
}

function dayWords(dow: string): string | null {
  if (dow === '*') return 'every day';
  if (dow === '1-5') return 'Monday to Friday';
  if (dow === '0,6' || dow === '6,0') return 'Saturday and Sunday';
  if (/^\d(,\d)*$/.test(dow))
    return (
      'every ' +
      dow
        .split(',')
        .map(d => DAYS[+d % 7])
        .join(', ')
    );
  return null;
}

/** A cron schedule in words ("every day at 03:00 UTC"); the expression itself when it has no simple reading. */
export function scheduleInWords(cron: string | null | undefined, timezone = 'UTC'): string {
  const raw = (cron || '').trim();
  if (!raw) return 'on demand';
  const expr = MACROS[raw] || raw;
  const f = expr.split(/\s+/);
  if (f.length !== 5) return `cron ${raw} (${timezone})`;
  const [min, hour, dom, mon, dow] = f;
  const tz = ` ${timezone}`;
  const step = /^\*\/(\d+)$/;
  if (hour === '*' && dom === '*' && mon === '*' && dow === '*') {
    if (min === '*') return 'every minute';
    if (step.test(min)) return `every ${step.exec(min)![1]} minutes`;
    if (/^\d+$/.test(min)) return `every hour at :${min.padStart(2, '0')}`;
  }
  if (/^\d+$/.test(min) && step.test(hour) && dom === '*' && mon === '*' && dow === '*')
    return `every ${step.exec(hour)![1]} hours at :${min.padStart(2, '0')}`;
  if (!/^\d+$/.test(min) || !/^\d+$/.test(hour) || mon !== '*') return `cron ${raw} (${timezone})`;
  const at = `at ${hour.padStart(2, '0')}:${min.padStart(2, '0')}${tz}`;
  if (dom === '*') {
    const days = dayWords(dow);
    return days ? `${days} ${at}` : `cron ${raw} (${timezone})`;
  }
  if (/^\d+$/.test(dom) && dow === '*') return `on the ${ordinal(+dom)} of every month ${at}`;
  return `cron ${raw} (${timezone})`;
}

/** One point of a metric chart: the run it comes from and its value. */
export interface ChartPoint {
  x: number;
  y: number;
  value: number;
  label: string;
}

/** A tick on an axis: where (pixels) and its text. */
export interface Tick {
  at: number;
  label: string;
}

/** What an SVG metric chart draws: a point per finite value, the y axis ticks and the x axis labels. */
export interface Chart {
  points: ChartPoint[];
  yTicks: Tick[];
  xTicks: Tick[];
  plot: { left: number; top: number; right: number; bottom: number };
}

function tickLabel(v: number, span: number): string {
  if (v === 0) return '0';
  const digits = span > 0 ? Math.max(0, Math.min(6, 2 - Math.floor(Math.log10(span)))) : 3;
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-4 ? v.toExponential(2) : v.toFixed(digits);
}

/**
 * The geometry of a metric chart of `width` x `height` pixels for values oldest first (NaN ones left out):
 * one run is one point in the middle, several are spread evenly; the y axis spans the values with a margin.
 */
export function chartGeometry(
  values: { value: number; label: string }[],
  width = 320,
  height = 160
): Chart {
  const plot = { left: 52, top: 10, right: width - 12, bottom: height - 28 };
  const vs = values.filter(v => typeof v.value === 'number' && isFinite(v.value));
  if (!vs.length) return { points: [], yTicks: [], xTicks: [], plot };
  let lo = Math.min(...vs.map(v => v.value));
  let hi = Math.max(...vs.map(v => v.value));
  const pad = hi > lo ? (hi - lo) * 0.1 : Math.abs(hi) * 0.1 || 1;
  lo -= pad;
  hi += pad;
  const w = plot.right - plot.left;
  const h = plot.bottom - plot.top;
  const xAt = (i: number) => plot.left + (vs.length > 1 ? (i * w) / (vs.length - 1) : w / 2);
  const yAt = (v: number) => plot.bottom - ((v - lo) / (hi - lo)) * h;
  const points = vs.map((v, i) => ({ x: xAt(i), y: yAt(v.value), value: v.value, label: v.label }));
  const yTicks = [0, 1, 2, 3, 4].map(k => {
    const v = lo + ((hi - lo) * k) / 4;
    return { at: yAt(v), label: tickLabel(v, hi - lo) };
  });
  const every = Math.max(1, Math.ceil(vs.length / 6));
  const xTicks = points
    .filter((_, i) => i % every === 0 || i === points.length - 1)
    .map(p => ({ at: p.x, label: p.label }));
  return { points, yTicks, xTicks, plot };
}

/** One recorded promotion decision as the Models view lists it. */
export interface PromotionEntry {
  key: string;
  alias: string;
  version: string;
  decision: string;
  reasons: string[];
  at: string;
  when: string;
  by: string;
  comparedTo: string;
}

/** A recorded decision as the server lists it (`PromotionRecordOut`). */
export interface PromotionRecord {
  version: string;
  alias: string;
  decision: string;
  reasons?: string[];
  time?: string | null;
  by?: string | null;
  compared_version?: string | null;
}

/** Who a decision was recorded for; decisions recorded before users were have none. */
export const UNKNOWN_USER = 'someone (not recorded)';

/** When a decision was made, as a person reads it: "5m ago", "just now" (also a little ahead of this clock). */
export function decidedWhen(iso: string | null | undefined, now: Date = new Date()): string {
  const t = iso ? new Date(iso).getTime() : NaN;
  if (isNaN(t)) return iso || 'at an unrecorded time';
  return now.getTime() - t < 60_000 ? 'just now' : formatWhen(iso, now);
}

/** The promotion decisions the server lists for a model (every one, newest first), optionally for one alias. */
export function promotionHistory(
  promotions: PromotionRecord[] | null | undefined,
  alias?: string,
  now: Date = new Date()
): PromotionEntry[] {
  return (promotions || [])
    .filter(p => !alias || p.alias === alias)
    .map((p, i) => ({
      key: `${i}-${p.time || ''}-${p.alias}-${p.version}`,
      alias: p.alias,
      version: p.version,
      decision: p.decision,
      reasons: p.reasons || [],
      at: p.time || '',
      when: decidedWhen(p.time, now),
      by: p.by || UNKNOWN_USER,
      comparedTo: p.compared_version || ''
    }));
}

/** The metric names to show side by side for model versions: those most versions have, at most `n`. */
export function keyMetrics(metrics: Record<string, number>[], n = 4): string[] {
  const count = new Map<string, number>();
  for (const m of metrics)
    for (const k of Object.keys(m || {})) count.set(k, (count.get(k) || 0) + 1);
  return [...count.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, n)
    .map(([k]) => k);
}

/** A metric value in a table: 4 significant digits, '—' when missing. */
export function formatMetric(v: number | null | undefined): string {
  if (v === null || v === undefined || !isFinite(v)) return '—';
  return Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3)
    ? v.toExponential(3)
    : String(+v.toPrecision(4));
}

/** The first line of a run's error, cut to `n` characters (the summary a list shows). */
export function errorSummary(error: string | null | undefined, n = 160): string {
  if (!error) return '';
  const lines = error
    .split('\n')
    .map(l => l.trim())
    .filter(Boolean);
  // a traceback ends with the exception: that is the line that says what went wrong
  const line =
    lines.find(l => /^[A-Za-z_.]*(Error|Exception)\b/.test(l)) || lines[lines.length - 1] || '';
  return line.length > n ? `${line.slice(0, n - 1)}…` : line;
}

/** The runs started from this Lab that have ended, given the jobs' last runs (run id -> job name watched). */
export function endedRuns(
  watched: Map<string, string>,
  runs: { id: string; status: string; error?: string | null }[]
): { id: string; job: string; status: string; error: string }[] {
  const out = [];
  for (const r of runs) {
    const job = watched.get(String(r.id));
    if (job === undefined || ['queued', 'running'].includes(r.status)) continue;
    out.push({ id: String(r.id), job, status: r.status, error: errorSummary(r.error) });
  }
  return out;
}

/** The unit of a metric read from its name (`duration_s`, `latency_ms`, `peak_bytes`, `accuracy_pct`); '' when none. */
export function metricUnit(name: string): string {
  const m = /(?:^|[_.\-/])(s|sec|seconds|ms|bytes|mb|gb|pct|percent)$/i.exec(name);
  if (!m) return '';
  const u = m[1].toLowerCase();
  return (
    {
      s: 's',
      sec: 's',
      seconds: 's',
      ms: 'ms',
      bytes: 'B',
      mb: 'MB',
      gb: 'GB',
      pct: '%',
      percent: '%'
    }[u] || ''
  );
}

/** A short label for a run on a chart axis: its start as MM-DD HH:MM (UTC), or its id. */
export function runLabel(r: { id: string; started_at?: string | null }): string {
  if (!r.started_at) return r.id.slice(0, 6);
  const d = new Date(r.started_at);
  if (isNaN(d.getTime())) return r.id.slice(0, 6);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
}
