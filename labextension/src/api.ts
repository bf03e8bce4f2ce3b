import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** An error answer of the mlscale API: status plus its `error` message. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string
  ) {
    super(message);
  }
}

/** Call /mlscale/api/<path> with the server's token and XSRF cookie; JSON in, JSON out. */
export async function api<T = any>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'mlscale/api', path);
  // 'no-cache' revalidates like Lab's default 'no-store' but without its `?<timestamp>` cache buster, which the
  // API refuses as an unknown query argument
  const resp = await ServerConnection.makeRequest(url, { cache: 'no-cache', ...init }, settings);
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || resp.statusText);
  return data as T;
}

export const post = (path: string, body: unknown = {}) =>
  api(path, { method: 'POST', body: JSON.stringify(body) });

/** GET a list route with its change token: `unchanged` (no body) when `since` is still current. */
export async function poll<T>(
  path: string,
  since: string
): Promise<{ data: T | null; token: string; unchanged: boolean }> {
  const settings = ServerConnection.makeSettings();
  const q = since ? `?since=${encodeURIComponent(since)}` : '';
  const url = URLExt.join(settings.baseUrl, 'mlscale/api', path) + q;
  const resp = await ServerConnection.makeRequest(url, { cache: 'no-cache' }, settings);
  if (resp.status === 304) return { data: null, token: since, unchanged: true };
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) throw new ApiError(resp.status, (data && data.error) || resp.statusText);
  return { data: data as T, token: resp.headers.get('X-Mlscale-Token') || '', unchanged: false };
}
