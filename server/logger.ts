/**
 * The server's log: JSON lines for collectors, or pino-pretty's readable lines
 * for a person at a terminal. `log.format` chooses; `auto` (the default) is
 * pretty exactly when stdout is a TTY. pino-pretty runs as a pino transport
 * (its own worker thread), so formatting never costs the HTTP thread.
 */
import type { Config } from '../config/index.js';

export type LogFormat = 'pretty' | 'json';

export function logFormat(format: Config['log']['format'], stdoutIsTty: boolean): LogFormat {
  if (format === 'auto') return stdoutIsTty ? 'pretty' : 'json';
  return format;
}

/** Node types isTTY as boolean, but it is undefined on a pipe. */
function stdoutIsTerminal(): boolean {
  return (process.stdout as { isTTY?: boolean }).isTTY === true;
}

/** Fastify's `logger` option for this config (false when silent). */
export function loggerOptions(log: Config['log'], stdoutIsTty = stdoutIsTerminal()): false | Record<string, unknown> {
  if (log.level === 'silent') return false;
  if (logFormat(log.format, stdoutIsTty) === 'json') return { level: log.level };
  return {
    level: log.level,
    transport: {
      target: 'pino-pretty',
      options: { colorize: stdoutIsTty, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', destination: 1 },
    },
  };
}
