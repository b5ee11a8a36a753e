// The control plane's slow-path policy: source allow list, expected sender, payload type.
// (Header validity and the latch are the offload's: test/offload/record/flows.test.ts.)
import t from 'tap';
import { decideFlow, type FlowQuery } from '../../server/flowPolicy.js';

t.test('decideFlow', async (t) => {
  const base: FlowQuery = {
    sourceAllowed: true,
    address: '203.0.113.7',
    port: 5004,
    payloadType: 111,
    negotiatedPayloadTypes: [111, 0],
  };
  const cases: Array<[label: string, change: Partial<FlowQuery>, accept: boolean, reason: string]> = [
    ['all good', {}, true, 'ok'],
    ['source not allowed', { sourceAllowed: false }, false, 'source-not-allowed'],
    ['expected host matches', { expectedSource: { host: '203.0.113.7' } }, true, 'ok'],
    ['expected host and port match', { expectedSource: { host: '203.0.113.7', port: 5004 } }, true, 'ok'],
    ['expected host, IPv4-mapped address', { address: '::ffff:203.0.113.7', expectedSource: { host: '203.0.113.7' } }, true, 'ok'],
    ['IPv6 case-insensitive', { address: '2001:DB8::1', expectedSource: { host: '2001:db8::1' } }, true, 'ok'],
    ['another host', { expectedSource: { host: '203.0.113.8' } }, false, 'source-mismatch'],
    ['another port', { expectedSource: { host: '203.0.113.7', port: 5006 } }, false, 'source-mismatch'],
    ['payload type not negotiated', { payloadType: 96 }, false, 'payload-type'],
    ['source checks come first', { sourceAllowed: false, payloadType: 1 }, false, 'source-not-allowed'],
    ['expected sender before payload type', { expectedSource: { host: '203.0.113.8' }, payloadType: 1 }, false, 'source-mismatch'],
  ];
  for (const [label, change, accept, reason] of cases) {
    t.strictSame(decideFlow({ ...base, ...change }), { accept, reason }, label);
  }
});
