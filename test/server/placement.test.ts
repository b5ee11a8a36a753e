// Worker placement belongs to the offload client: the fewest sessions win, and
// a play goes to the worker that holds its media when that is a tie, so no peer
// fetch happens for nothing (issue 10, worker placement).
import t from 'tap';
import { startServer } from '../helpers/server.js';
import { makeWav } from '../helpers/media.js';

t.test('a play runs where its media is cached unless another worker is less loaded', async (t) => {
  const server = await startServer({ 'offload.workers': 2 });
  t.teardown(() => server.stop());
  for (const name of ['x.wav', 'y.wav']) t.equal((await server.api('PUT', `/v1/media/${name}`, makeWav(8000, 1, 1))).status, 201);
  let port = 41000;
  const play = async (media: string): Promise<string> => {
    const r = await server.api('POST', '/v1/sessions', { mode: 'play', media, state: 'paused', destination: { host: '127.0.0.1', port: (port += 2) } });
    t.equal(r.status, 201, r.text);
    return r.body.id as string;
  };
  const owners = (): number[] => [...(server.cache as unknown as { entries: Map<string, { owner: number }> }).entries.values()].map((e) => e.owner);

  await play('x.wav');
  t.same(server.offload.load, [1, 0], 'the first play on worker 0');
  await play('y.wav');
  t.same(server.offload.load, [1, 1], 'the second media loads and plays on the idle worker 1');
  t.same(owners(), [0, 1], 'x cached by worker 0, y by worker 1');
  // A tie: y's second play goes where y is cached (worker 1), not to the lowest index.
  await play('y.wav');
  t.same(server.offload.load, [1, 2], 'y again on its owner, worker 1');
  // Worker 0 is now less loaded and owns x; then a tie, and x stays on its owner.
  await play('x.wav');
  t.same(server.offload.load, [2, 2]);
  await play('x.wav');
  t.same(server.offload.load, [3, 2], 'x again on its owner, worker 0');
  // Balance beats locality: worker 1 is less loaded, so x plays there (fetched from worker 0).
  await play('x.wav');
  t.same(server.offload.load, [3, 3], 'x on the less loaded worker 1');
  // Ending sessions gives their places back, however often they are deleted.
  const ids = (await server.api('GET', '/v1/sessions')).body.sessions.map((s: { id: string }) => s.id);
  for (const id of ids) await Promise.all([server.api('DELETE', `/v1/sessions/${id}`), server.api('DELETE', `/v1/sessions/${id}`)]);
  t.same(server.offload.load, [0, 0], 'nothing placed');
  // A record session and its live relay: the relay runs on the recording's worker.
  const rec = await server.api('POST', '/v1/sessions', {
    mode: 'record',
    name: 'r',
    tracks: [{ kind: 'audio', codec: 'PCMU', payloadType: 0, clockRate: 8000 }],
  });
  t.equal(rec.status, 201, rec.text);
  t.same(server.offload.load, [1, 0]);
  const live = await server.api('POST', '/v1/sessions', { mode: 'play', live: rec.body.id, destination: { host: '127.0.0.1', port: 43000 } });
  t.equal(live.status, 201, live.text);
  t.same(server.offload.load, [2, 0], 'the relay beside its recording');
  await server.api('DELETE', `/v1/sessions/${rec.body.id}`);
});
