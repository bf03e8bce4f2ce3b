import * as React from 'react';
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { statusBadge } from '../logic';

/** Show an error the way Lab does: a dialog with its message. */
export function showError(e: unknown): void {
  void showDialog({ title: 'mlscale', body: (e as Error).message, buttons: [Dialog.okButton()] });
}

/** A Lab button that runs an async action, disabled while it runs; a failure is shown in a dialog. */
export function ActionButton(props: {
  label: string;
  onClick: () => Promise<unknown> | void;
  className?: string;
  title?: string;
  accept?: boolean;
}): JSX.Element {
  const [busy, setBusy] = React.useState(false);
  const alive = React.useRef(true);
  React.useEffect(
    () => () => {
      alive.current = false;
    },
    []
  );
  const click = async () => {
    setBusy(true);
    try {
      await props.onClick();
    } catch (e) {
      showError(e);
    } finally {
      if (alive.current) setBusy(false);
    }
  };
  const kind = props.accept ? 'jp-mod-accept' : 'jp-mod-reject';
  return (
    <button
      className={`jp-Button jp-mod-styled jp-mod-small ${kind} mlscale-btn ${props.className || ''}`}
      title={props.title || props.label}
      disabled={busy}
      onClick={() => void click()}
    >
      {props.label}
    </button>
  );
}

/** A run or job status as a coloured badge. */
export function Badge(props: { status: string | null | undefined }): JSX.Element {
  const b = statusBadge(props.status);
  return <span className={`mlscale-badge mlscale-${b.cls}`}>{b.label}</span>;
}

/** A titled part of the panel, with its last error under the title. */
export function Section(props: {
  name: string;
  title: string;
  error?: string;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <section className="mlscale-section" data-section={props.name}>
      <h3>{props.title}</h3>
      {props.error ? <div className="mlscale-status">error: {props.error}</div> : null}
      <div className="mlscale-section-body">{props.children}</div>
    </section>
  );
}

/** A labelled input with the error of its field right under it. */
export function Field(props: {
  name: string;
  label: string;
  error?: string;
  children: React.ReactElement;
}): JSX.Element {
  return (
    <div className="mlscale-field">
      <label>
        <span className="mlscale-label">{props.label}</span>
        {props.children}
      </label>
      <div className="mlscale-error" data-error={props.name}>
        {props.error || ''}
      </div>
    </div>
  );
}

/** One key: value line of a card. */
export function Stat(props: { label: string; value: React.ReactNode; cls?: string }): JSX.Element {
  return (
    <span className={`mlscale-stat ${props.cls || ''}`}>
      <span className="mlscale-meta">{props.label}</span> {props.value}
    </span>
  );
}
