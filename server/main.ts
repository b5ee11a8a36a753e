/**
 * `npm start`: load the config, make sure there is something to play, start the
 * offload workers and the HTTP API, and shut down cleanly on SIGINT/SIGTERM.
 */
import { loadConfig, ConfigError } from '../config/index.js';
import { buildServer } from './app.js';
import { ensureSampleMedia } from './samples.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`offcast: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const created = await ensureSampleMedia(config.mediaRoot);
  const server = await buildServer(config);
  if (created.length > 0) server.app.log.info({ media: created, root: config.mediaRoot }, 'created sample media');
  await server.app.listen({ host: config.http.host, port: config.http.port });
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down');
    await server.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`offcast: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
