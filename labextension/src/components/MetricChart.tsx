import * as React from 'react';
import { chartGeometry } from '../view';
import { formatMetric } from '../view';

/** The first of several x labels starts at the y axis, the last ends at the right edge: none is cut or overlaps. */
function tickAnchor(i: number, n: number): 'start' | 'middle' | 'end' {
  if (n < 2) return 'middle';
  return i === 0 ? 'start' : i === n - 1 ? 'end' : 'middle';
}

/**
 * A metric over runs as an SVG chart: axes with ticks, the metric's name (and unit) on the y axis, the runs on the
 * x axis, a visible point per run (joined by a line when there are several).
 */
export function MetricChart(props: {
  metric: string;
  unit?: string;
  values: { value: number; label: string }[];
  width?: number;
  height?: number;
}): JSX.Element {
  const width = props.width || 420;
  const height = props.height || 180;
  const g = chartGeometry(props.values, width, height);
  const { left, top, right, bottom } = g.plot;
  if (!g.points.length)
    return <div className="mlscale-chart mlscale-empty">no values of {props.metric} yet</div>;
  const line = g.points.map(p => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
  const yTitle = props.unit ? `${props.metric} (${props.unit})` : props.metric;
  return (
    <svg
      className="mlscale-chart"
      width={width}
      height={height}
      viewBox={`0 0 ${width} ${height}`}
      role="img"
      aria-label={`${props.metric} over ${g.points.length} run(s)`}
    >
      <line className="mlscale-axis" x1={left} y1={bottom} x2={right} y2={bottom} />
      <line className="mlscale-axis" x1={left} y1={top} x2={left} y2={bottom} />
      {g.yTicks.map((t, i) => (
        <g key={`y${i}`}>
          <line className="mlscale-grid" x1={left} y1={t.at} x2={right} y2={t.at} />
          <text className="mlscale-tick" x={left - 4} y={t.at + 3} textAnchor="end">
            {t.label}
          </text>
        </g>
      ))}
      {g.xTicks.map((t, i) => (
        <text
          key={`x${i}`}
          className="mlscale-tick"
          x={t.at}
          y={bottom + 12}
          textAnchor={tickAnchor(i, g.xTicks.length)}
        >
          {t.label}
        </text>
      ))}
      <text
        className="mlscale-axis-title"
        x={(left + right) / 2}
        y={height - 3}
        textAnchor="middle"
      >
        run (oldest → newest)
      </text>
      <text
        className="mlscale-axis-title"
        x={10}
        y={(top + bottom) / 2}
        textAnchor="middle"
        transform={`rotate(-90 10 ${(top + bottom) / 2})`}
      >
        {yTitle}
      </text>
      {g.points.length > 1 ? <polyline className="mlscale-line" points={line} /> : null}
      {g.points.map((p, i) => (
        <circle key={i} className="mlscale-point" cx={p.x} cy={p.y} r={4}>
          <title>{`${p.label}: ${formatMetric(p.value)}`}</title>
        </circle>
      ))}
    </svg>
  );
}
