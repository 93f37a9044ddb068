// The balancer's choice, driven with made-up heartbeats and a made-up clock.
import { describe, expect, it } from 'vitest';
import type { ServiceHeartbeatReq } from '../transport/messages.js';
import { ServiceRegistry, type KnownService } from '../web/balancer-core.js';

const KNOWN = new Map<string, KnownService>([
  ['a', { kind: 'frontend', url: 'http://a/' }],
  ['b', { kind: 'frontend', url: 'http://b/' }],
  ['smtp', { kind: 'smtp', url: 'smtp://smtp' }],
]);

const beat = (node: string, inflight: number, loopDelayMs = 0, kind: 'frontend' | 'smtp' = 'frontend'): ServiceHeartbeatReq => ({
  t: 'svc_heartbeat',
  node,
  kind,
  pid: 1,
  load: { inflight, loopDelayMs, served: 0, rssBytes: 0 },
});

describe('ServiceRegistry', () => {
  it('chooses the live frontend with the least load', () => {
    const r = new ServiceRegistry(3000, KNOWN);
    r.heartbeat(beat('a', 10), 0);
    r.heartbeat(beat('b', 2), 0);
    r.heartbeat(beat('smtp', 0, 0, 'smtp'), 0);
    expect(r.choose(100)?.name).toBe('b');
  });

  it('counts clients sent since the last heartbeat as load, so a burst spreads out', () => {
    const r = new ServiceRegistry(3000, KNOWN);
    r.heartbeat(beat('a', 3), 0);
    r.heartbeat(beat('b', 0), 0);
    const picks = Array.from({ length: 9 }, () => r.choose(10)!.name);
    expect(picks.filter((p) => p === 'b').length).toBe(6); // b takes 3 until it is level with a, then they alternate
    r.heartbeat(beat('b', 0), 20); // b reported again: what was sent is now in its own figure
    expect(r.choose(21)?.name).toBe('b');
  });

  it('weighs event-loop delay', () => {
    const r = new ServiceRegistry(3000, KNOWN);
    r.heartbeat(beat('a', 1, 100), 0);
    r.heartbeat(beat('b', 4, 0), 0);
    expect(r.choose(1)?.name).toBe('b');
  });

  it('drops a frontend silent for longer than the limit, and takes it back when it beats again', () => {
    const r = new ServiceRegistry(3000, KNOWN);
    r.heartbeat(beat('a', 0), 0);
    r.heartbeat(beat('b', 50), 2500);
    expect(r.choose(2600)?.name).toBe('a');
    expect(r.choose(3001)?.name).toBe('b');
    expect(r.list(3001).map((s) => [s.name, s.alive])).toEqual([
      ['a', false],
      ['b', true],
    ]);
    expect(r.choose(6000)).toBeNull();
    r.heartbeat(beat('a', 0), 6001);
    expect(r.choose(6002)?.name).toBe('a');
  });

  it('takes only the services its topology names, and sends clients to the URL the topology gives', () => {
    const r = new ServiceRegistry(3000, KNOWN);
    expect(r.heartbeat(beat('intruder', 0), 0)).toBe(false);
    expect(r.heartbeat(beat('smtp', 0), 0)).toBe(false); // an SMTP node posing as a frontend
    expect(r.choose(1)).toBeNull();
    expect(r.list(1)).toEqual([]);
    expect(r.heartbeat(beat('a', 0), 0)).toBe(true);
    expect(r.choose(1)?.url).toBe('http://a/');
  });
});
