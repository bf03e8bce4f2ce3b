import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICommandPalette, IFrame, MainAreaWidget } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { api } from './api';

/** The command that opens one plot of a cluster's Dask dashboard as a Lab pane. */
export const OPEN_PLOT = 'mlscale:open-dashboard-plot';

/** The plots a pane can show (the dashboard's `individual-*` Bokeh pages, as dask-labextension embeds them). */
export const PLOTS = {
  'task-stream': { page: 'individual-task-stream', label: 'Task stream' },
  progress: { page: 'individual-progress', label: 'Progress' },
  'workers-memory': { page: 'individual-workers-memory', label: 'Worker memory' }
} as const;
export type DashboardPlot = keyof typeof PLOTS;

/** What a pane needs of a cluster of GET /mlscale/api/clusters. */
export interface DashboardCluster {
  name: string;
  dashboard_proxy?: string | null;
}

/**
 * The URL of a plot through the Jupyter server's proxy: the cluster's `dashboard_proxy` path
 * (`<base_url>proxy/<port>/status`) with the plot's page, on the server's origin (PageConfig's base URL);
 * `null` when the server does not proxy that cluster's dashboard.
 */
export function plotUrl(cluster: DashboardCluster, plot: DashboardPlot): string | null {
  const p = cluster.dashboard_proxy;
  if (!p || !PLOTS[plot] || !/\/proxy\/[^/]+\/status$/.test(p)) return null;
  const path = p.replace(/status$/, PLOTS[plot].page);
  return new URL(path, PageConfig.getBaseUrl()).href;
}

const panes = new Map<string, MainAreaWidget<IFrame>>();

/** Open (or bring forward) a pane with one plot of a cluster's Dask dashboard. */
export function openDashboardPlot(
  app: JupyterFrontEnd,
  cluster: DashboardCluster,
  plot: DashboardPlot = 'task-stream'
): MainAreaWidget<IFrame> {
  const url = plotUrl(cluster, plot);
  if (!url)
    throw new Error(
      `the dashboard of cluster '${cluster.name}' is not reachable through this server`
    );
  const id = `mlscale-dashboard-${cluster.name}-${plot}`;
  const open = panes.get(id);
  if (open && !open.isDisposed) {
    app.shell.activateById(id);
    return open;
  }
  // Bokeh needs scripts, and its websocket the server's origin (the proxy checks it and the login cookie);
  // the page is the dashboard of a registered cluster only (the server limits the proxy to those)
  const frame = new IFrame({
    sandbox: ['allow-scripts', 'allow-same-origin'],
    referrerPolicy: 'same-origin'
  });
  frame.url = url;
  frame.addClass('mlscale-dashboard-frame');
  const pane = new MainAreaWidget({ content: frame });
  pane.id = id;
  pane.addClass('mlscale-dashboard-pane');
  pane.title.label = `${PLOTS[plot].label} · ${cluster.name}`;
  pane.title.caption = `Dask dashboard of cluster '${cluster.name}': ${PLOTS[plot].label.toLowerCase()}`;
  pane.title.className = 'mlscale-dashboard-tab';
  pane.title.closable = true;
  pane.disposed.connect(() => panes.delete(id));
  panes.set(id, pane);
  app.shell.add(pane, 'main', { mode: 'split-right' });
  app.shell.activateById(id);
  return pane;
}

/** The command `mlscale: open Dask dashboard plot` ({cluster?, plot?}; the first proxied cluster by default). */
export function registerDashboardCommand(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null
): void {
  app.commands.addCommand(OPEN_PLOT, {
    label: args =>
      `mlscale: open Dask dashboard plot${args.plot ? ` (${PLOTS[args.plot as DashboardPlot]?.label})` : ''}`,
    caption: 'A plot of a cluster’s Dask dashboard as a Lab pane, through the Jupyter server',
    execute: async args => {
      const plot = ((args.plot as string) || 'task-stream') as DashboardPlot;
      if (!PLOTS[plot])
        throw new Error(`unknown plot '${plot}' (one of ${Object.keys(PLOTS).join(', ')})`);
      const clusters = await api<DashboardCluster[]>('clusters');
      const c = clusters.find(c => (args.cluster ? c.name === args.cluster : !!c.dashboard_proxy));
      if (!c)
        throw new Error(
          args.cluster ? `no cluster '${args.cluster}'` : 'no cluster with a dashboard'
        );
      return openDashboardPlot(app, c, plot);
    }
  });
  if (palette)
    for (const plot of Object.keys(PLOTS))
      palette.addItem({ command: OPEN_PLOT, args: { plot }, category: 'mlscale' });
}
