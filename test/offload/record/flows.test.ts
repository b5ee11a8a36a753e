import t from 'tap';
import { FlowTable, FLOW_RESULT_NAMES } from '../../../offload/record/flows.js';

const name = (r: number) => FLOW_RESULT_NAMES[r];
const SENDER = ['10.0.0.5', 40000, 0xcafe0001] as const;

t.test('a new flow: query, pending, install, fast path', async (t) => {
  const table = new FlowTable();
  t.equal(name(table.lookup(...SENDER, 0)), 'new', 'unknown flow');
  t.equal(table.markPending(...SENDER, 0), true);
  t.equal(table.held, 1, 'the first packet is held');
  t.equal(table.isPending(...SENDER), true);
  t.equal(name(table.lookup(...SENDER, 1)), 'pending', 'while the query is out');
  t.equal(name(table.lookup(...SENDER, 2)), 'pending');
  t.equal(table.held, 3);
  t.equal(table.install(...SENDER), true);
  t.equal(table.isPending(...SENDER), false);
  table.releaseHeld(3);
  t.equal(table.held, 0);
  t.equal(name(table.lookup(...SENDER, 3)), 'fast');
  t.equal(name(table.lookup(...SENDER, 4)), 'fast');
  t.strictSame(
    { fast: table.fast, pending: table.pending, queries: table.queries, denied: table.denied, rateLimited: table.rateLimited },
    { fast: 2, pending: 2, queries: 1, denied: 0, rateLimited: 0 },
  );
  t.equal(table.latched, true);
});

t.test('spoofs never take over a latched flow, and cost no query', async (t) => {
  const table = new FlowTable();
  table.lookup(...SENDER, 0);
  table.markPending(...SENDER, 0);
  table.install(...SENDER);
  const spoofs: Array<[label: string, address: string, port: number, ssrc: number]> = [
    ['another port', '10.0.0.5', 40002, 0xcafe0001],
    ['another SSRC from the same address and port', '10.0.0.5', 40000, 0xcafe0002],
    ['another SSRC from the same address', '10.0.0.5', 40002, 0xdeadbeef],
    ['another address', '10.0.0.6', 40000, 0xcafe0001],
    ['the same address written as IPv4-mapped IPv6', '::ffff:10.0.0.5', 40000, 0xcafe0001],
  ];
  for (const [label, address, port, ssrc] of spoofs) {
    t.equal(name(table.lookup(address, port, ssrc, 10)), 'denied', label);
    t.equal(name(table.lookup(address, port, ssrc, 11)), 'denied', `${label}, again`);
  }
  t.equal(name(table.lookup(...SENDER, 12)), 'fast', 'the latched sender is unaffected');
  t.equal(table.queries, 1, 'no query for any spoof');
  t.equal(table.spoofed, 10);
  t.equal(table.denied, 10);
  t.equal(table.latchedAddress, SENDER[0]);
  t.equal(table.latchedPort, SENDER[1]);
  t.equal(table.latchedSsrc, SENDER[2]);
});

t.test('a rejected flow is denied without a new query; releasing the latch forgets denials', async (t) => {
  const table = new FlowTable();
  const other = ['192.0.2.9', 5004, 77] as const;
  t.equal(name(table.lookup(...other, 0)), 'new');
  table.markPending(...other, 0);
  table.reject(...other);
  table.releaseHeld(1);
  t.equal(name(table.lookup(...other, 1)), 'denied');
  t.equal(name(table.lookup(...other, 5000)), 'denied', 'still denied later');
  t.equal(table.queries, 1);
  t.equal(name(table.lookup(...SENDER, 5001)), 'new', 'another flow may still ask');
  table.markPending(...SENDER, 5001);
  t.equal(table.install(...SENDER), true);
  table.releaseLatch();
  t.equal(table.latched, false);
  t.equal(name(table.lookup(...other, 6000)), 'new', 'after release the control plane decides again');
  t.equal(name(table.lookup(...SENDER, 6000)), 'new', 'the old sender asks again too');
});

t.test('the deny set is a bounded LRU', async (t) => {
  const table = new FlowTable({ maxDenied: 2 });
  const a = ['10.1.0.1', 1000, 1] as const;
  const b = ['10.1.0.2', 1000, 2] as const;
  const c = ['10.1.0.3', 1000, 3] as const;
  table.reject(...a);
  table.reject(...b);
  t.equal(name(table.lookup(...a, 0)), 'denied', 'a seen: now the most recent');
  table.reject(...c); // evicts b, the least recently seen
  t.equal(name(table.lookup(...a, 1)), 'denied', 'a kept');
  t.equal(name(table.lookup(...c, 1)), 'denied', 'c kept');
  t.equal(name(table.lookup(...b, 1)), 'new', 'b forgotten');
  table.reject(...a); // rejecting again refreshes, no second slot
  table.reject(...b); // evicts c
  t.equal(name(table.lookup(...c, 2)), 'new', 'c forgotten');
  t.equal(name(table.lookup(...a, 2)), 'denied');
});

t.test('rate limits: queries out at once and per second', async (t) => {
  const table = new FlowTable({ maxPendingFlows: 4, maxQueriesPerSecond: 20 });
  for (let i = 0; i < 4; i++) {
    t.equal(name(table.lookup('10.2.0.1', 2000 + i, 9, 0)), 'new', `flow ${i}`);
    table.markPending('10.2.0.1', 2000 + i, 9, 0);
  }
  t.equal(table.pendingFlowCount, 4);
  t.equal(name(table.lookup('10.2.0.1', 2004, 9, 0)), 'rate-limited', 'a fifth query while four are out');
  t.equal(table.markPending('10.2.0.1', 2004, 9, 0), false, 'markPending refuses too');
  t.equal(name(table.lookup('10.2.0.1', 2001, 9, 0)), 'pending', 'pending flows still hold packets');
  table.reject('10.2.0.1', 2000, 9);
  t.equal(name(table.lookup('10.2.0.1', 2004, 9, 0)), 'new', 'a slot freed by an answer');
  t.equal(table.rateLimited, 1);

  const perSecond = new FlowTable({ maxPendingFlows: 100, maxQueriesPerSecond: 20, maxPending: 1000 });
  for (let i = 0; i < 20; i++) {
    perSecond.lookup('10.3.0.1', 3000 + i, 1, 100 + i);
    perSecond.markPending('10.3.0.1', 3000 + i, 1, 100 + i);
    perSecond.reject('10.3.0.1', 3000 + i, 1);
  }
  t.equal(name(perSecond.lookup('10.3.0.1', 4000, 1, 999)), 'rate-limited', 'the 21st query within a second');
  t.equal(name(perSecond.lookup('10.3.0.1', 4000, 1, 1099)), 'rate-limited', 'the window opened at 100');
  t.equal(name(perSecond.lookup('10.3.0.1', 4000, 1, 1100)), 'new', 'a second after the window opened');
  t.equal(perSecond.queries, 20);
});

t.test('held packets are bounded per track', async (t) => {
  const table = new FlowTable({ maxPending: 2 });
  table.lookup(...SENDER, 0);
  table.markPending(...SENDER, 0);
  t.equal(name(table.lookup(...SENDER, 1)), 'pending');
  t.equal(name(table.lookup(...SENDER, 2)), 'pending-full', 'two held already');
  t.equal(name(table.lookup('10.9.9.9', 1, 1, 2)), 'rate-limited', 'no new query without room to hold its packet');
  t.equal(table.pendingFull, 1);
  table.releaseHeld(5);
  t.equal(table.held, 0, 'never below zero');
  t.equal(name(table.lookup(...SENDER, 3)), 'pending');
});

t.test('an unanswered query expires', async (t) => {
  const table = new FlowTable({ pendingTimeoutMs: 2000 });
  table.lookup(...SENDER, 0);
  table.markPending(...SENDER, 0);
  t.equal(name(table.lookup(...SENDER, 1999)), 'pending');
  t.equal(name(table.lookup(...SENDER, 2000)), 'new', 'forgotten after pendingTimeoutMs: ask again');
  table.markPending(...SENDER, 2000);
  t.equal(table.expirePending(3999), 0);
  t.equal(table.expirePending(4000), 1);
  t.equal(table.pendingFlowCount, 0);
});

t.test('two queries accepted at once: the first install wins', async (t) => {
  const table = new FlowTable();
  const second = ['10.0.0.7', 40000, 5] as const;
  table.lookup(...SENDER, 0);
  table.markPending(...SENDER, 0);
  table.lookup(...second, 0);
  table.markPending(...second, 0);
  t.equal(table.install(...SENDER), true);
  t.equal(table.install(...SENDER), true, 'installing the latched flow again is harmless');
  t.equal(table.install(...second), false, 'refused');
  t.equal(table.pendingFlowCount, 0);
  table.releaseLatch();
  t.equal(name(table.lookup(...second, 1)), 'new');
  t.throws(() => new FlowTable({ maxPending: 0 }), RangeError);
  t.throws(() => new FlowTable({ maxQueriesPerSecond: 1.5 }), RangeError);
});

t.test('held packets are bounded by bytes (4 MiB by default)', async (t) => {
  const bytes = new FlowTable({ maxPendingBytes: 3000 });
  bytes.lookup(...SENDER, 0, 1200);
  bytes.markPending(...SENDER, 0, 1200);
  t.equal(name(bytes.lookup(...SENDER, 1, 1200)), 'pending', '2400 bytes held');
  t.equal(name(bytes.lookup(...SENDER, 1, 1200)), 'pending-full', '3600 would exceed 3000');
  t.equal(name(bytes.lookup(...SENDER, 1, 600)), 'pending', 'a smaller one still fits');
  t.equal(bytes.heldBytes, 3000);
  bytes.releaseHeld(3, 3000);
  t.equal(bytes.heldBytes, 0);
  t.equal(name(bytes.lookup(...SENDER, 2, 1200)), 'pending', 'room again once released');

  const big = new FlowTable();
  big.lookup(...SENDER, 0, 1200);
  big.markPending(...SENDER, 0, 1200);
  let held = 1;
  while (name(big.lookup(...SENDER, 1, 1200)) === 'pending') held++;
  t.equal(held, Math.floor((4 * 1024 * 1024) / 1200), 'by default 4 MiB of 1200-byte packets: a 4K keyframe');
  t.throws(() => new FlowTable({ maxPendingBytes: 0 }), RangeError);
});
