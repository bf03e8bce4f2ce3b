import * as React from 'react';
import { JupyterFrontEnd } from '@jupyterlab/application';
import { MainAreaWidget, VDomRenderer } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { api } from './api';
import { openDashboardPlot } from './dashboard';
import { JobModel, PanelModel, Run } from './model';
import { ClusterActions, ClustersSection } from './components/ClustersSection';
import { JobsSection } from './components/JobsSection';
import { JobActions, JobView } from './components/JobView';
import { ModelsSection } from './components/ModelsSection';

/** The left sidebar: clusters, jobs and models, re-rendered (in place, by React) when a poll changes them. */
export class MlscalePanel extends VDomRenderer<PanelModel> {
  private actions: ClusterActions;

  constructor(
    private app: JupyterFrontEnd,
    private tracker: INotebookTracker
  ) {
    super(new PanelModel());
    this.id = 'mlscale-panel';
    this.title.caption = 'mlscale';
    this.title.label = 'mlscale';
    this.addClass('mlscale-panel');
    this.actions = {
      openPlot: (c, p) => void openDashboardPlot(this.app, c, p),
      insertCode: code => this.insertCode(code)
    };
    this.model.onOpenJob = name => openJobView(this.app, this.model, name);
  }

  protected onAfterShow(): void {
    this.model.start();
  }

  protected onAfterHide(): void {
    this.model.stop();
  }

  private insertCode(code: string): void {
    const panel = this.tracker.currentWidget;
    if (!panel) throw new Error('open a notebook first');
    const nb = panel.content;
    void this.app.commands.execute('notebook:insert-cell-below').then(() => {
      if (nb.activeCell) nb.activeCell.model.sharedModel.setSource(code);
    });
  }

  protected render(): JSX.Element {
    return (
      <div className="mlscale-panel-body">
        <ClustersSection model={this.model} actions={this.actions} />
        <JobsSection model={this.model} />
        <ModelsSection model={this.model} />
      </div>
    );
  }
}

/** A job's view in the main area, polling the job and its runs while it is shown. */
class JobPanel extends VDomRenderer<JobModel> {
  constructor(
    model: JobModel,
    private actions: JobActions,
    private onDeleted: () => void
  ) {
    super(model);
    this.addClass('mlscale-job-panel');
  }

  protected onAfterShow(): void {
    this.model.start();
  }

  protected onAfterAttach(msg: any): void {
    super.onAfterAttach(msg);
    this.model.start();
  }

  protected onBeforeHide(): void {
    this.model.stop();
  }

  protected render(): JSX.Element {
    return <JobView model={this.model} actions={this.actions} onDeleted={this.onDeleted} />;
  }
}

const views = new Map<string, MainAreaWidget<JobPanel>>();

/** Open (or bring forward) the view of one job in the main area. */
export function openJobView(
  app: JupyterFrontEnd,
  panel: PanelModel,
  name: string
): MainAreaWidget<JobPanel> {
  const id = `mlscale-job-${name}`;
  const open = views.get(id);
  if (open && !open.isDisposed) {
    app.shell.activateById(id);
    void open.content.model.refresh();
    return open;
  }
  const actions: JobActions = {
    openOutput: async (r: Run) => {
      const out = await api<{ path: string | null; absolute_path: string }>(
        `runs/${encodeURIComponent(r.id)}/output`
      );
      if (!out.path)
        throw new Error(`the output notebook is outside the server root: ${out.absolute_path}`);
      await app.commands.execute('docmanager:open', { path: out.path });
    }
  };
  const model = new JobModel(name, panel);
  let pane: MainAreaWidget<JobPanel>;
  const content = new JobPanel(model, actions, () => pane.dispose());
  pane = new MainAreaWidget({ content });
  pane.id = id;
  pane.title.label = `Job ${name}`;
  pane.title.caption = `mlscale job '${name}': runs, metrics, output`;
  pane.title.closable = true;
  pane.addClass('mlscale-job-pane');
  pane.disposed.connect(() => {
    views.delete(id);
    model.dispose();
  });
  views.set(id, pane);
  app.shell.add(pane, 'main');
  app.shell.activateById(id);
  return pane;
}
