/**
 * rtsp.maxConnections: a flood of RTSP connections holds no more than the cap.
 * One more is answered 503 and closed, counted, and the connections inside the
 * cap are served as before; a closed one frees its place.
 */
import t from 'tap';
import { startServer } from '../../helpers/server.js';
import { RawRtsp } from '../../helpers/rtsp.js';
import { waitUntil } from '../../helpers/ready.js';

const CAP = 3;
const server = await startServer({ 'rtsp.maxConnections': CAP }, { rtspPort: 0 });
t.teardown(() => server.stop());
const port = server.rtsp!.port!;

async function workerRtsp(): Promise<{ connections: number; refused: number }> {
  const [w] = await server.offload.all('worker.stats', {});
  return w!.rtsp;
}

/** The first answer a fresh connection gets to an OPTIONS, and whether it was then closed. */
async function tryOne(c: RawRtsp): Promise<number> {
  c.write(c.text('OPTIONS', '*'));
  return (await c.response(0)).status;
}

t.test('20 connections at once with the cap at 3: 3 are served, 17 get 503 and are closed, all counted', async (t) => {
  const before = await workerRtsp();
  const conns = await Promise.all(Array.from({ length: 20 }, () => RawRtsp.connect(port)));
  t.teardown(() => conns.forEach((c) => c.close()));
  const statuses = await Promise.all(conns.map(tryOne));
  t.equal(statuses.filter((s) => s === 200).length, CAP, 'as many served as the cap');
  t.equal(statuses.filter((s) => s === 503).length, 20 - CAP, 'the rest refused with 503');
  const refused = conns.filter((_c, i) => statuses[i] === 503);
  await Promise.all(refused.map((c) => c.waitClosed()));
  t.ok(
    refused.every((c) => c.responses[0]!.headers.connection === 'close'),
    'a refusal says Connection: close',
  );
  const after = await workerRtsp();
  t.equal(after.refused, before.refused + 20 - CAP, 'each refusal counted');
  t.equal(after.connections, CAP, 'only the served ones are open');
  const metrics = (await server.api('GET', '/metrics')).text;
  t.match(metrics, new RegExp(`offcast_rtsp_connections_refused_total ${after.refused}\\b`), 'in /metrics');

  // The served ones keep working, and one that closes frees its place.
  const served = conns.filter((_c, i) => statuses[i] === 200);
  t.equal((await served[0]!.request('OPTIONS', '*')).status, 200, 'a served connection still answers');
  served[1]!.close();
  await waitUntil(async () => (await workerRtsp()).connections === CAP - 1, 10000, 'the closed connection to be forgotten');
  const next = await RawRtsp.connect(port);
  t.teardown(() => next.close());
  t.equal(await tryOne(next), 200, 'a new connection takes the freed place');
});
