// CPU profiling for processes the bench does not spawn itself (the cluster nodes, via TestCluster).
// `node --cpu-prof` is not allowed in NODE_OPTIONS, but `--import` is: kv-bench --profile sets
//   NODE_OPTIONS="--import=<this file>"  and  PENNCLOUD_PROF_DIR=<dir>
// for the cluster, and this module starts the V8 profiler in every thread it is loaded in (the main
// thread and each worker thread) and writes a .cpuprofile when the thread is done:
//   - main thread: on process exit;
//   - tablet worker threads: when they are told to stop (the node terminates them right after, and
//     terminate() runs no 'exit' handlers), and on their own exit otherwise.
import { writeFileSync, mkdirSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { isMainThread, parentPort, threadId, workerData } from 'node:worker_threads';

const dir = process.env['PENNCLOUD_PROF_DIR'];
// Optional: profile only the nodes whose name matches this regex (e.g. '^web1$'); the others run at full speed.
const only = process.env['PENNCLOUD_PROF_ONLY'];
const fromWorker = (workerData as { node?: unknown } | null)?.node;
// Which node: the main thread's argv is [node, penncloud.js, 'node', NAME, ...]; a tablet worker has it in workerData.
const nodeName = isMainThread ? (process.argv[3] ?? 'process') : typeof fromWorker === 'string' ? fromWorker : 'worker';

if (dir && (only === undefined || new RegExp(only).test(nodeName))) {
  mkdirSync(dir, { recursive: true });
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 }); // µs
  session.post('Profiler.start');
  let written = false;
  const dump = (): void => {
    if (written) return;
    written = true;
    // The in-thread inspector session answers synchronously, so this works inside 'exit' handlers.
    session.post('Profiler.stop', (err, res) => {
      if (err) return;
      const file = join(dir, `${nodeName}-${process.pid}-${isMainThread ? 'main' : `worker${threadId}`}.cpuprofile`);
      writeFileSync(file, JSON.stringify(res.profile));
    });
  };
  process.on('exit', dump);
  if (!isMainThread && parentPort) {
    parentPort.on('message', (m: unknown) => {
      // This listener was added before the worker's own, so the profile is written before the stop work runs.
      if (typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'stop') dump();
    });
  }
}
