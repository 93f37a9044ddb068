// The penncloud command line as a user runs it: `up` with its URL line, kv commands, status, exit codes.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, TestCluster } from './support/cluster.js';

function run(args: string[], input?: Buffer): { code: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
}

describe('penncloud CLI', () => {
  // TestCluster only writes the topology here; `penncloud up` starts the nodes.
  const cluster = new TestCluster({ basePort: 21200, storageNodes: 2, tablets: 8 });
  const topo = ['--topology', cluster.topologyFile];
  let upProc: ChildProcess;
  let upOut = '';

  beforeAll(async () => {
    upProc = spawn(process.execPath, [CLI, 'up', ...topo, '--data', join(cluster.dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
    upProc.stdout!.on('data', (d: Buffer) => (upOut += d.toString()));
    upProc.stderr!.on('data', (d: Buffer) => (upOut += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!upOut.includes('penncloud is up')) {
      if (Date.now() > deadline || upProc.exitCode !== null) throw new Error(`up did not come up: ${upOut}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    if (upProc.exitCode === null) {
      upProc.kill('SIGKILL');
    }
    await cluster.stop();
  });

  it('prints one line with the address to use', () => {
    expect(upOut).toMatch(/penncloud is up \(3 nodes.*\): master at tcp:\/\/127\.0\.0\.1:21200/);
  });

  it('puts and gets text and binary values (stdin), exits 1 for a missing cell', () => {
    expect(run(['kv', 'put', 'r1', 'c1', 'hello', ...topo]).code).toBe(0);
    const got = run(['kv', 'get', 'r1', 'c1', ...topo]);
    expect(got.code).toBe(0);
    expect(got.stdout.toString()).toBe('hello');
    const bin = randomBytes(200_000);
    expect(run(['kv', 'put', 'r1', 'bin', ...topo], bin).code).toBe(0);
    expect(Buffer.compare(run(['kv', 'get', 'r1', 'bin', ...topo]).stdout, bin)).toBe(0);
    const missing = run(['kv', 'get', 'r1', 'nope', ...topo]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no cell/);
    expect(run(['kv', 'cols', 'r1', ...topo]).stdout.toString()).toBe('bin\nc1\n');
  });

  it('cput exits 1 on mismatch, delete exits 1 when absent', () => {
    expect(run(['kv', 'cput', 'r2', 'c', '--absent', 'first', ...topo]).code).toBe(0);
    expect(run(['kv', 'cput', 'r2', 'c', 'wrong', 'x', ...topo]).code).toBe(1);
    expect(run(['kv', 'cput', 'r2', 'c', 'first', 'second', ...topo]).code).toBe(0);
    expect(run(['kv', 'get', 'r2', 'c', ...topo]).stdout.toString()).toBe('second');
    expect(run(['kv', 'delete', 'r2', 'c', ...topo]).code).toBe(0);
    expect(run(['kv', 'delete', 'r2', 'c', ...topo]).code).toBe(1);
  });

  it('status --json lists every node with state and pid, and every tablet', () => {
    const r = run(['status', '--json', ...topo, '--data', join(cluster.dir, 'data')]);
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout.toString()) as { nodes: Array<{ name: string; state: string; pid: number | null; kind: string }>; tablets: Array<{ primary: string; replicas: string[]; epoch: number }> };
    expect(st.nodes.map((n) => `${n.name}:${n.kind}:${n.state}`)).toEqual(['master:master:alive', 's1:storage:alive', 's2:storage:alive']);
    for (const n of st.nodes) expect(n.pid).toBeGreaterThan(0);
    expect(st.tablets).toHaveLength(8);
    expect(st.tablets[0]).toMatchObject({ primary: 's1', replicas: ['s1'], epoch: 1 });
  });

  it('refuses a second up on the same ports', () => {
    const r = run(['up', ...topo, '--data', join(cluster.dir, 'other')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/already running/);
  });

  it('answers user mistakes with one line and exit 2', () => {
    const bad = join(cluster.dir, 'bad.toml');
    writeFileSync(bad, '[cluster]\ntablets = 0\n[master]\nport = 1\n');
    const cases = [
      run(['node', 'nobody', ...topo]),
      run(['kv', 'get', 'r', 'c', '--topology', bad]),
      run(['kv', 'get', 'r', 'c', '--topology', join(cluster.dir, 'missing.toml')]),
      run(['kv', 'get', 'onlyrow', ...topo]),
      run(['frobnicate']),
    ];
    for (const r of cases) {
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    expect(cases[0]!.stderr).toMatch(/no node named 'nobody'/);
    expect(cases[1]!.stderr).toMatch(/cluster\.tablets must be between/);
  });

  it('restarts a node that dies, and stops everything cleanly on SIGINT', async () => {
    const st = JSON.parse(run(['status', '--json', ...topo, '--data', join(cluster.dir, 'data')]).stdout.toString()) as { nodes: Array<{ name: string; pid: number }> };
    const s2 = st.nodes.find((n) => n.name === 's2')!.pid;
    process.kill(s2, 'SIGKILL');
    const deadline = Date.now() + 15_000;
    while (!upOut.includes('node s2 exited')) {
      if (Date.now() > deadline) throw new Error(upOut);
      await new Promise((r) => setTimeout(r, 50));
    }
    // Back and serving (the client retries while it restarts).
    let code: number | null = null;
    for (let i = 0; i < 50 && code !== 0; i++) {
      code = run(['kv', 'put', 'after-restart', 'c', 'v', ...topo]).code;
    }
    expect(code).toBe(0);
    const exited = new Promise<number | null>((r) => upProc.once('exit', (c) => r(c)));
    upProc.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(upOut).toMatch(/stopped/);
    expect(existsSync(join(cluster.dir, 'data', 'cluster.json'))).toBe(false);
    for (const n of st.nodes) {
      if (n.name === 's2') continue;
      expect(() => process.kill(n.pid, 0)).toThrow();
    }
  });
});
