import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog, ToolbarButton } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { api, post } from './api';
import { registerDashboardCommand } from './dashboard';
import { paramFields, promoteBody, FormField } from './logic';
import { initialValues, PromoteBody } from './components/PromoteDialog';
import { MlscalePanel, openJobView } from './panel';

const PROMOTE = 'mlscale:promote-to-job';
const OPEN_JOB = 'mlscale:open-job';

/** The "Promote to job" dialog, shown again (with what was typed) until the server accepts the job. */
async function promoteDialog(panel: NotebookPanel, sidebar: MlscalePanel): Promise<void> {
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
  let body = new PromoteBody(path, fields, profiles, initialValues(path, fields));
  for (;;) {
    const res = await showDialog({
      title: 'Promote to job',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Promote' })]
    });
    if (!res.button.accept) return;
    const values = body.values;
    const { body: req, errors } = promoteBody(body.form(), fields);
    if (!req) {
      body = new PromoteBody(path, fields, profiles, values, errors);
      continue;
    }
    try {
      const job = await post('jobs', req);
      void showDialog({
        title: 'Promoted',
        body: `job ${job.name}: next run ${job.next_run_at || 'on demand'}`,
        buttons: [Dialog.okButton()]
      });
      void sidebar.model.refresh();
      return;
    } catch (e) {
      body = new PromoteBody(path, fields, profiles, values, {}, (e as Error).message);
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
        if (nb) return promoteDialog(nb, panel);
      }
    });
    app.commands.addCommand(OPEN_JOB, {
      label: args => `mlscale: open job ${(args.name as string) || ''}`,
      caption: 'The runs, metric chart and output of an mlscale job',
      execute: args => {
        if (!args.name) throw new Error('which job? (args.name)');
        return openJobView(app, panel.model, args.name as string);
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
