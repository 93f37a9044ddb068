// Structured logs (pino) to stderr. The launcher sends each node's stderr to <data>/logs/<node>.log.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string): Logger {
  return pino({ name, level: process.env['PENNCLOUD_LOG_LEVEL'] ?? 'info', base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
