// A cache owner that dies mid-fetch: it takes a peer's cache.get, tells the test, then exits
// without answering (what a worker that crashes while a peer waits on it does).
import { parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import type { PeerMessage } from '../../../offload/channel.js';

const peer = (workerData as { port: MessagePort }).port;
peer.on('message', (m: PeerMessage) => {
  if (m.kind !== 'cache.get') return;
  parentPort!.postMessage({ got: m.key });
  // Give the message to the parent a moment to leave, then die without answering.
  setTimeout(() => process.exit(1), 20);
});
parentPort!.postMessage({ ready: true });
