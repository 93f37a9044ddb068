// A small line chart in plain inline SVG (no chart library): one value per second over the last minute,
// gaps where there is no value, scaled from zero to the largest value shown.

const WIDTH = 240;
const HEIGHT = 48;
const PAD = 2;

/** The polyline segments (runs of non-null values) as SVG point lists. */
export function chartSegments(values: Array<number | null>, max: number): string[] {
  const top = max > 0 ? max : 1;
  const step = values.length > 1 ? (WIDTH - 2 * PAD) / (values.length - 1) : 0;
  const segments: string[] = [];
  let current: string[] = [];
  values.forEach((v, i) => {
    if (v === null) {
      if (current.length > 0) segments.push(current.join(' '));
      current = [];
      return;
    }
    const x = PAD + i * step;
    const y = HEIGHT - PAD - (Math.min(v, top) / top) * (HEIGHT - 2 * PAD);
    current.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  if (current.length > 0) segments.push(current.join(' '));
  return segments;
}

export function Sparkline(props: { values: Array<number | null>; label: string; kind: 'ops' | 'latency' }) {
  const max = Math.max(0, ...props.values.map((v) => v ?? 0));
  const segments = chartSegments(props.values, max);
  return (
    <svg class={`spark ${props.kind}`} viewBox={`0 0 ${WIDTH} ${HEIGHT}`} preserveAspectRatio="none" role="img" aria-label={props.label}>
      <title>{props.label}</title>
      <line class="axis" x1={PAD} y1={HEIGHT - PAD} x2={WIDTH - PAD} y2={HEIGHT - PAD} />
      {segments.map((points) => (points.includes(' ') ? <polyline points={points} /> : <circle cx={points.split(',')[0]} cy={points.split(',')[1]} r="1.5" />))}
    </svg>
  );
}
