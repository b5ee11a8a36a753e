/**
 * A record session in the offload: per track an RTP socket (and RTCP on
 * port+1), a flow table, RFC 3550 sequence tracking, a bounded reorder buffer,
 * and the outputs (rtpdump + playable file) behind in-memory buffers flushed
 * at least once a second.
 *
 * Slow path: the first packet of an unknown flow is held here and only its
 * header fields go to the control plane, which installs or rejects the flow.
 * Fast path: a latched flow's packets never leave the offload.
 */
import type dgram from 'node:dgram';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { FlowHeader, RecordCreateParams, RecordingSummary, RecordStats, RecordTrackParams, RecordTrackStats } from '../channel.js';
import { OffloadError } from '../channel.js';
import { bindPortPair, closePortPair } from '../sockets.js';
import { DurableFile } from '../../storage/recording/file.js';
import { rtpdumpHeader, writeRtpdumpRecordHeader } from '../../storage/rtpdump.js';
import { classify, DROP_REASONS, Kind, KIND_NAMES, RtpHeader, validateRtp } from './packet.js';
import { FlowResult, FLOW_RESULT_NAMES, FlowTable } from './flows.js';
import { SequenceTracker, SeqResult } from './sequence.js';
import { ReorderBuffer, ReorderResult } from './reorder.js';
import { buildReceiverReport, parseRtcp, readBye, readSenderInfo, SenderClock } from '../rtcp.js';
import type { TrackSpec } from '../../storage/types.js';
import { containerInfo, FrameOutput } from './output.js';
import { InterleavedIngest, type IngestTarget } from '../rtsp/ingest.js';
import type { RtspListener } from '../rtsp/listener.js';
import { recordedTrackOf, writeManifest, type Manifest, type ManifestTrack } from '../../storage/recording/manifest.js';

/** RTCP packets a track keeps until its recording starts (its flow latched, its first packet in order). */
const EARLY_RTCP_MAX = 4;

/** A received packet on its way through the reorder buffer (pooled: no allocation per packet). */
class Slot {
  msg: Buffer | null = null;
  /** Arrival, performance.now() ms and Unix ms. */
  at = 0;
  unixMs = 0;
  ts = 0;
  marker = false;
  off = 0;
  len = 0;
}

/** A packet held while its flow's slow-path query is out. */
interface Held {
  address: string;
  port: number;
  ssrc: number;
  msg: Buffer;
  at: number;
  unixMs: number;
}

export interface RecordHooks {
  onFlow(header: FlowHeader): void;
  onEnded(session: RecordSession, summary: RecordingSummary): void;
  rtcpIntervalMs: number;
  bindHost: string;
  /** The RTSP listener of this worker (interleaved tracks read from its connections). */
  rtsp: RtspListener | null;
}

/** Something that wants a record track's packets in order (live fan-out). */
export interface PacketSubscriber {
  forward(msg: Buffer, off: number, len: number, ts: number, marker: boolean, now: number): void;
}

export class RecordTrack implements IngestTarget {
  readonly session: RecordSession;
  readonly index: number;
  readonly params: RecordTrackParams;
  readonly spec: TrackSpec;
  readonly fileName: string;
  readonly dumpName: string;
  readonly contentType: string;
  rtp!: dgram.Socket;
  rtcp!: dgram.Socket;
  /** RTSP RECORD over TCP: the connection's frames instead of the sockets (null: UDP). */
  private ingest: InterleavedIngest | null = null;
  private readonly hdr = new RtpHeader();
  readonly flows: FlowTable;
  private held: Held[] = [];
  readonly tracker = new SequenceTracker();
  readonly reorder: ReorderBuffer<Slot>;
  private readonly pool: Slot[] = [];
  private probation: Slot | null = null;
  readonly output: FrameOutput;
  dump!: DurableFile;
  file!: DurableFile;
  private dumpStarted = false;
  private dumpStartUnixMs = 0;
  private readonly dumpHdr = Buffer.alloc(8);
  private readonly chunks2: Uint8Array[] = [this.dumpHdr, this.dumpHdr];
  readonly clock = new SenderClock();
  senderRtcp: { address: string; port: number } | null = null;
  /** RTCP that came before the recording started: a sender sends its first SR ahead of its first RTP packet. */
  private earlyRtcp: { msg: Buffer; address: string; port: number; onRtp: boolean; at: number; unixMs: number }[] = [];
  bye = false;
  lastPacketAt = 0;
  readonly subscribers: PacketSubscriber[] = [];
  readonly stats: { packets: number; bytes: number; slowPath: number; fastPath: number; held: number; drops: Record<string, number> } = {
    packets: 0,
    bytes: 0,
    slowPath: 0,
    fastPath: 0,
    held: 0,
    drops: {},
  };
  private readonly emit = (slot: Slot, lostBefore: number): void => this.inOrder(slot, lostBefore);

  constructor(session: RecordSession, index: number, params: RecordTrackParams, reorderPackets: number, reorderMs: number, holdMs: number) {
    this.session = session;
    this.flows = new FlowTable({ maxPendingMs: holdMs });
    this.index = index;
    this.params = params;
    this.spec = { kind: params.kind, encoding: params.encoding, payloadType: params.payloadType, clockRate: params.clockRate, fmtp: params.fmtp };
    if (params.channels !== undefined) this.spec.channels = params.channels;
    const info = containerInfo(this.spec);
    this.fileName = `track${index}.${info.ext}`;
    this.dumpName = `track${index}.rtpdump`;
    this.contentType = info.contentType;
    let capacity = 1;
    while (capacity < reorderPackets) capacity <<= 1;
    this.reorder = new ReorderBuffer<Slot>({ capacity, maxDelayMs: reorderMs });
    for (let i = 0; i < capacity + 4; i++) this.pool.push(new Slot());
    this.output = new FrameOutput(this.spec);
  }

  async open(dir: string, bindHost: string, rtsp: RtspListener | null): Promise<void> {
    this.dump = await DurableFile.create(path.join(dir, this.dumpName));
    this.file = await DurableFile.create(path.join(dir, this.fileName));
    this.file.write(this.output.begin());
    if (this.params.interleaved !== undefined) {
      this.ingest = new InterleavedIngest(this.params, rtsp, this);
      return;
    }
    const pair = await bindPortPair(this.params.localPort, bindHost, this.params.family);
    this.rtp = pair.rtp;
    this.rtcp = pair.rtcp;
    // Ingest bursts: a large receive buffer (the kernel caps it at rmem_max).
    try {
      this.rtp.setRecvBufferSize(8 * 1024 * 1024);
    } catch {
      /* capped */
    }
    this.rtp.on('error', () => this.drop('socket-error'));
    this.rtcp.on('error', () => this.drop('socket-error'));
    this.rtp.on('message', (msg, rinfo) => this.onRtp(msg, rinfo.address, rinfo.port));
    this.rtcp.on('message', (msg, rinfo) => this.onRtcp(msg, rinfo.address, rinfo.port, false, performance.now()));
  }

  /** IngestTarget: an interleaved RTP frame, as if it came to the RTP socket from the RTSP client. */
  ingestRtp(msg: Buffer, address: string, port: number): void {
    this.onRtp(msg, address, port);
  }

  /** IngestTarget: an interleaved RTCP frame. */
  ingestRtcp(msg: Buffer, address: string, port: number): void {
    this.onRtcp(msg, address, port, false, performance.now());
  }

  drop(reason: string): void {
    const d = this.stats.drops;
    d[reason] = (d[reason] ?? 0) + 1;
  }

  private onRtp(msg: Buffer, address: string, port: number): void {
    if (this.session.state !== 'recording') return;
    const now = performance.now();
    const kind = classify(msg, msg.length);
    if (kind === Kind.Rtcp) {
      if (this.session.rtcpMux) this.onRtcp(msg, address, port, true, now);
      else this.drop('rtcp');
      return;
    }
    if (kind !== Kind.Rtp) {
      // RFC 7983 leaves first bytes 192-255 to nobody: RTP with a version other than 2.
      this.drop(kind === Kind.Garbage && msg.length > 0 && msg[0]! >= 0xc0 ? 'version' : KIND_NAMES[kind]!);
      return;
    }
    const hdr = this.hdr;
    const bad = validateRtp(msg, msg.length, hdr);
    if (bad !== 0) {
      this.drop(DROP_REASONS[bad]!);
      return;
    }
    const flow = this.flows.lookup(address, port, hdr.ssrc, now, msg.length);
    if (flow === FlowResult.Fast) {
      this.stats.fastPath++;
      this.fast(msg, now, Date.now());
      return;
    }
    if (flow === FlowResult.Pending) {
      this.hold(address, port, hdr.ssrc, msg, now);
      return;
    }
    if (flow === FlowResult.New) {
      if (!this.flows.markPending(address, port, hdr.ssrc, now, msg.length)) {
        this.drop('rate-limited');
        return;
      }
      this.hold(address, port, hdr.ssrc, msg, now);
      this.stats.slowPath++;
      this.session.hooks.onFlow({
        sessionId: this.session.id,
        track: this.index,
        address,
        port,
        ssrc: hdr.ssrc,
        version: 2,
        payloadType: hdr.payloadType,
        seq: hdr.seq,
        ts: hdr.ts,
        marker: hdr.marker,
        padding: (msg[0]! & 0x20) !== 0,
        extension: hdr.hasExtension,
        csrcCount: hdr.csrcCount,
        length: msg.length,
      });
      return;
    }
    this.drop(FLOW_RESULT_NAMES[flow]!);
  }

  private hold(address: string, port: number, ssrc: number, msg: Buffer, at: number): void {
    this.held.push({ address, port, ssrc, msg, at, unixMs: Date.now() });
    this.stats.held++;
  }

  /** The control plane installed the flow: latch it and replay what was held for it. */
  install(address: string, port: number, ssrc: number): { installed: boolean; released: number } {
    const installed = this.flows.install(address, port, ssrc);
    let released = 0;
    let bytes = 0;
    const keep: Held[] = [];
    for (const h of this.held) {
      if (h.address === address && h.port === port && h.ssrc === ssrc) {
        bytes += h.msg.length;
        if (installed) {
          this.stats.fastPath++;
          validateRtp(h.msg, h.msg.length, this.hdr);
          this.fast(h.msg, h.at, h.unixMs);
          released++;
        } else this.drop('rejected');
      } else keep.push(h);
    }
    this.flows.releaseHeld(this.held.length - keep.length, bytes);
    this.held = keep;
    return { installed, released };
  }

  reject(address: string, port: number, ssrc: number): number {
    this.flows.reject(address, port, ssrc);
    let dropped = 0;
    let bytes = 0;
    const keep: Held[] = [];
    for (const h of this.held) {
      if (h.address === address && h.port === port && h.ssrc === ssrc) {
        this.drop('rejected');
        dropped++;
        bytes += h.msg.length;
      } else keep.push(h);
    }
    this.flows.releaseHeld(dropped, bytes);
    this.held = keep;
    return dropped;
  }

  /** Drops held packets whose query timed out (no answer from the control plane), and those held too long. */
  expireHeld(now: number): void {
    if (this.held.length === 0) return;
    this.flows.expirePending(now);
    const keep: Held[] = [];
    let bytes = 0;
    const maxMs = this.flows.maxPendingMs;
    for (const h of this.held) {
      if (!this.flows.isPending(h.address, h.port, h.ssrc)) this.drop('slow-path-timeout');
      else if (now - h.at >= maxMs) this.drop('hold-timeout');
      else {
        keep.push(h);
        continue;
      }
      bytes += h.msg.length;
    }
    this.flows.releaseHeld(this.held.length - keep.length, bytes);
    this.held = keep;
  }

  /** The fast path: header already validated into this.hdr. */
  private fast(msg: Buffer, at: number, unixMs: number): void {
    const hdr = this.hdr;
    if (hdr.payloadType !== this.params.payloadType) {
      this.drop('payload-type');
      return;
    }
    this.lastPacketAt = at;
    const r = this.tracker.update(hdr.seq);
    if (r === SeqResult.Bad) {
      this.drop('sequence-jump');
      return;
    }
    if (r === SeqResult.Resync) {
      // The sender restarted its sequence: write out what we hold, start over.
      this.reorder.flush(this.emit);
    }
    const slot = this.pool.pop() ?? new Slot();
    slot.msg = msg;
    slot.at = at;
    slot.unixMs = unixMs;
    slot.ts = hdr.ts;
    slot.marker = hdr.marker;
    slot.off = hdr.payloadOffset;
    slot.len = hdr.payloadLength;
    if (r === SeqResult.Probation) {
      // RFC 3550 A.1: not valid until MIN_SEQUENTIAL packets in a row; keep the latest.
      if (this.probation !== null) this.release(this.probation);
      this.probation = slot;
      return;
    }
    this.tracker.updateJitter(hdr.ts, at, this.params.clockRate);
    const ext = this.tracker.extSeq;
    if (this.probation !== null) {
      const p = this.probation;
      this.probation = null;
      this.push(ext - 1, p, at);
    }
    this.push(ext, slot, at);
    this.reorder.drain(at, this.emit);
  }

  private push(ext: number, slot: Slot, now: number): void {
    const res = this.reorder.push(ext, slot, now);
    if (res === ReorderResult.Accepted) return;
    this.drop(res === ReorderResult.Duplicate ? 'duplicate' : res === ReorderResult.TooLate ? 'late' : 'reorder-full');
    this.release(slot);
  }

  private release(slot: Slot): void {
    slot.msg = null;
    this.pool.push(slot);
  }

  /** Reorder timeouts (called from the session tick). */
  drain(now: number): void {
    this.reorder.drain(now, this.emit);
  }

  /** An in-order packet: rtpdump, depacketize, playable file, live subscribers. */
  private inOrder(slot: Slot, lostBefore: number): void {
    const msg = slot.msg!;
    if (!this.dumpStarted) this.startDump(slot.unixMs);
    writeRtpdumpRecordHeader(this.dumpHdr, 0, msg.length, Math.max(0, Math.round(slot.unixMs - this.dumpStartUnixMs)), false);
    this.chunks2[1] = msg;
    this.dump.write(this.chunks2);
    const payload = msg.subarray(slot.off, slot.off + slot.len);
    const chunks = this.output.push(payload, slot.ts, slot.marker, lostBefore);
    if (chunks.length > 0) this.file.write(chunks);
    this.stats.packets++;
    this.stats.bytes += slot.len;
    const subs = this.subscribers;
    for (let i = 0; i < subs.length; i++) subs[i]!.forward(msg, slot.off, slot.len, slot.ts, slot.marker, slot.at);
    this.release(slot);
  }

  private startDump(unixMs: number): void {
    this.dumpStarted = true;
    this.dumpStartUnixMs = unixMs;
    // The sender's address and port; a track that never had one names our own port.
    const src = this.flows.latchedAddress ?? '0.0.0.0';
    const port = this.flows.latchedAddress === null ? this.params.localPort : this.flows.latchedPort;
    this.dump.write([rtpdumpHeader(unixMs, src.startsWith('::ffff:') ? src.slice(7) : src, port)]);
    // Now that the sender is known, judge (and keep) what it sent ahead of its first packet.
    const early = this.earlyRtcp;
    this.earlyRtcp = [];
    for (const r of early) this.onRtcp(r.msg, r.address, r.port, r.onRtp, r.at, r.unixMs);
  }

  /**
   * Whether RTCP from (address, port) is the latched sender's: its address, and
   * its RTCP port (RTP port + 1) to our RTCP port, or with RTCP multiplexed its
   * RTP port (to either of ours). Anything else, a BYE with the sender's SSRC
   * included, is someone else's and ends or changes nothing.
   */
  private fromSender(address: string, port: number, onRtp: boolean): boolean {
    const f = this.flows;
    if (address !== f.latchedAddress) return false;
    // Interleaved: RTP and RTCP come on the one connection the flow latched.
    if (this.ingest !== null) return port === f.latchedPort;
    if (port === f.latchedPort) return this.session.rtcpMux;
    return !onRtp && port === f.latchedPort + 1;
  }

  /** RTCP on our RTCP port (`onRtp` false), or multiplexed on the RTP port. */
  onRtcp(msg: Buffer, address: string, port: number, onRtp: boolean, now: number, unixMs = Date.now()): void {
    if (this.session.state !== 'recording') return;
    const parsed = parseRtcp(msg);
    if (parsed === null) {
      this.drop('rtcp-malformed');
      return;
    }
    if (this.flows.latchedAddress === null || !this.dumpStarted) {
      // Too early to tell whose it is: kept (a few) until the recording starts.
      if (this.earlyRtcp.length < EARLY_RTCP_MAX) this.earlyRtcp.push({ msg, address, port, onRtp, at: now, unixMs });
      else this.drop('rtcp-unknown-source');
      return;
    }
    // Only the latched sender's RTCP counts.
    if (!this.fromSender(address, port, onRtp)) {
      this.drop('rtcp-unknown-source');
      return;
    }
    let ours = false;
    for (const sr of readSenderInfo(parsed)) {
      if (sr.ssrc >>> 0 !== this.flows.latchedSsrc >>> 0) continue;
      this.clock.update(sr.ntpSec, sr.ntpFrac, sr.rtpTs, now);
      ours = true;
    }
    for (const ssrc of readBye(parsed)) if (ssrc >>> 0 === this.flows.latchedSsrc >>> 0) ours = this.bye = true;
    if (!ours) return;
    this.senderRtcp = { address, port };
    // The sender's reports go to the rtpdump too (as RTCP records): they carry its NTP clock.
    writeRtpdumpRecordHeader(this.dumpHdr, 0, msg.length, Math.max(0, Math.round(unixMs - this.dumpStartUnixMs)), true);
    this.chunks2[1] = msg;
    this.dump.write(this.chunks2);
  }

  /** A receiver report to the sender about its stream (RFC 3550 6.4.2). */
  sendReceiverReport(now: number): void {
    if (this.flows.latchedAddress === null || !this.tracker.valid) return;
    const snap = this.tracker.snapshotForReport();
    const msg = buildReceiverReport(this.params.ssrc, this.session.cname, [
      {
        ssrc: this.flows.latchedSsrc,
        fractionLost: snap.fractionLost,
        totalLost: snap.totalLost,
        highestSeq: snap.highestSeq,
        jitter: snap.jitter,
        lsr: this.clock.lsr,
        dlsr: this.clock.dlsr(now),
      },
    ]);
    if (this.ingest !== null) {
      this.ingest.sendRtcp(msg);
      return;
    }
    const to = this.senderRtcp ?? { address: this.flows.latchedAddress, port: this.session.rtcpMux ? this.flows.latchedPort : this.flows.latchedPort + 1 };
    const sock = this.session.rtcpMux && this.senderRtcp === null ? this.rtp : this.rtcp;
    sock.send(msg, to.port, to.address, () => undefined);
  }

  /** Flush tick: the container's pending bytes, then both files to disk. */
  async flushFiles(): Promise<void> {
    const chunks = this.output.flush();
    if (chunks.length > 0) this.file.write(chunks);
    await Promise.all([this.dump.flush(), this.file.flush()]);
  }

  /** End of recording: release held packets in order, close the outputs, rename the files. */
  async finish(): Promise<void> {
    this.reorder.flush(this.emit);
    if (this.probation !== null) {
      this.release(this.probation);
      this.probation = null;
    }
    if (!this.dumpStarted) this.startDump(Date.now());
    const { tail, patches } = this.output.end();
    if (tail.length > 0) this.file.write(tail);
    await this.file.finalize(patches);
    await this.dump.finalize([]);
  }

  async abort(): Promise<void> {
    await Promise.allSettled([this.file?.abort(), this.dump?.abort()]);
  }

  closeSockets(): void {
    closePortPair(this);
    this.ingest?.close();
  }

  trackStats(): RecordTrackStats {
    const r = this.reorder;
    const latched = this.flows.latchedAddress;
    return {
      packets: this.stats.packets,
      bytes: this.stats.bytes,
      lost: r.lost,
      duplicates: r.duplicates,
      reordered: r.reordered,
      late: r.late,
      slowPath: this.stats.slowPath,
      fastPath: this.stats.fastPath,
      drops: { ...this.stats.drops },
      jitterMs: Math.round(((this.tracker.jitter * 1000) / this.params.clockRate) * 1000) / 1000,
      source: latched === null ? null : { address: latched, port: this.flows.latchedPort, ssrc: this.flows.latchedSsrc >>> 0 },
      frames: this.output.frames,
    };
  }

  /** The track in the manifest; `final` (the recording ended) adds whether its file is playable. */
  manifestTrack(final = false): ManifestTrack {
    const t: ManifestTrack = {
      index: this.index,
      kind: this.params.kind,
      codec: this.params.encoding,
      payloadType: this.params.payloadType,
      clockRate: this.params.clockRate,
      fmtp: this.params.fmtp,
      file: this.fileName,
      contentType: this.contentType,
      rtpdump: this.dumpName,
      packets: this.stats.packets,
      bytes: this.stats.bytes,
      lost: this.reorder.lost,
      duplicates: this.reorder.duplicates,
      reordered: this.reorder.reordered,
      late: this.reorder.late,
      durationMs: Math.round(this.output.durationMs(this.params.clockRate)),
    };
    if (this.params.channels !== undefined) t.channels = this.params.channels;
    if (final) {
      const why = this.output.unplayable();
      t.playable = why === null;
      if (why !== null) t.unplayableReason = why;
    }
    return t;
  }
}

export class RecordSession {
  readonly id: string;
  readonly name: string;
  readonly dir: string;
  readonly hooks: RecordHooks;
  readonly params: RecordCreateParams;
  readonly tracks: RecordTrack[];
  readonly rtcpMux: boolean;
  readonly cname: string;
  state: 'recording' | 'finishing' | 'ended' | 'failed' = 'recording';
  readonly createdAt = performance.now();
  readonly createdIso = new Date().toISOString();
  private nextRr = 0;
  private nextFlush = 0;
  private flushing: Promise<void> | null = null;
  private finishing: Promise<RecordingSummary> | null = null;
  /** The control plane asked for the end (`record.end`): its answer reports it, not `record.ended`. */
  endRequested = false;
  summary: RecordingSummary | null = null;

  constructor(params: RecordCreateParams, hooks: RecordHooks) {
    this.id = params.sessionId;
    this.name = params.name;
    this.dir = params.dir;
    this.hooks = hooks;
    this.params = params;
    this.rtcpMux = params.rtcpMux;
    this.cname = params.cname;
    this.tracks = params.tracks.map((t, i) => new RecordTrack(this, i, t, params.reorderPackets, params.reorderMs, params.holdMs));
  }

  async open(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: false });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new OffloadError('OFFCAST_RECORDING_EXISTS', `recording ${this.name} already exists`, 409);
      throw err;
    }
    await writeManifest(this.dir, this.manifest('recording'));
    const opened: RecordTrack[] = [];
    try {
      for (const t of this.tracks) {
        await t.open(this.dir, this.hooks.bindHost, this.hooks.rtsp);
        opened.push(t);
      }
    } catch (err) {
      for (const t of this.tracks) {
        t.closeSockets();
        await t.abort();
      }
      this.state = 'failed';
      const { rm } = await import('node:fs/promises');
      await rm(this.dir, { recursive: true, force: true });
      throw err;
    }
    const now = performance.now();
    this.nextRr = now + this.hooks.rtcpIntervalMs;
    this.nextFlush = now + this.params.flushMs;
  }

  /** Every ~20 ms from the worker: reorder timeouts, slow-path expiry, flushes, RTCP, idle/max. */
  tick(now: number): void {
    if (this.state !== 'recording') return;
    for (const t of this.tracks) {
      t.drain(now);
      t.expireHeld(now);
    }
    if (now >= this.nextFlush && this.flushing === null) {
      this.nextFlush = now + this.params.flushMs;
      this.flushing = Promise.all(this.tracks.map((t) => t.flushFiles()))
        .then(() => undefined)
        .catch((err: unknown) => {
          void this.end('failed', `disk error: ${(err as Error).message}`);
        })
        .finally(() => {
          this.flushing = null;
        });
    }
    if (now >= this.nextRr) {
      this.nextRr = now + this.hooks.rtcpIntervalMs * (0.5 + Math.random());
      for (const t of this.tracks) t.sendReceiverReport(now);
    }
    const last = Math.max(this.createdAt, ...this.tracks.map((t) => t.lastPacketAt));
    if (now - last >= this.params.idleTimeoutMs) void this.end('idle');
    else if (now - this.createdAt >= this.params.maxDurationMs) void this.end('max-duration');
    else if (this.tracks.every((t) => t.bye)) void this.end('bye');
  }

  /** Finalizes: every track's outputs closed and renamed, manifest written. Idempotent. */
  end(reason: string, error?: string): Promise<RecordingSummary> {
    if (this.finishing !== null) return this.finishing;
    this.state = 'finishing';
    for (const t of this.tracks) t.closeSockets();
    this.finishing = (async () => {
      if (this.flushing !== null) await this.flushing.catch(() => undefined);
      let failure = error;
      if (failure === undefined) {
        const results = await Promise.allSettled(this.tracks.map((t) => t.finish()));
        const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (bad !== undefined) failure = `disk error: ${(bad.reason as Error).message}`;
      } else {
        // A disk error: keep what reached the disk (.part files) for recovery, don't finalize.
        await Promise.all(this.tracks.map((t) => t.abort()));
      }
      this.state = failure === undefined ? 'ended' : 'failed';
      const summary: RecordingSummary = {
        name: this.name,
        state: failure === undefined ? 'finished' : 'failed',
        reason: failure === undefined ? reason : 'failed',
        durationMs: this.durationMs(),
        tracks: this.tracks.map((t) => recordedTrackOf(t.manifestTrack(true))),
      };
      if (failure !== undefined) summary.error = failure;
      try {
        await writeManifest(this.dir, this.manifest(failure === undefined ? 'finished' : 'failed', summary.reason, failure));
      } catch (err) {
        if (summary.error === undefined) {
          summary.state = 'failed';
          summary.error = `disk error: ${(err as Error).message}`;
          this.state = 'failed';
        }
      }
      this.summary = summary;
      this.hooks.onEnded(this, summary);
      return summary;
    })();
    return this.finishing;
  }

  durationMs(): number {
    return Math.round(Math.max(0, ...this.tracks.map((t) => t.output.durationMs(t.params.clockRate))));
  }

  private manifest(state: Manifest['state'], reason?: string, error?: string): Manifest {
    const m: Manifest = {
      version: 1,
      name: this.name,
      state,
      createdAt: this.createdIso,
      durationMs: this.durationMs(),
      tracks: this.tracks.map((t) => t.manifestTrack(state !== 'recording')),
    };
    if (state !== 'recording') m.finishedAt = new Date().toISOString();
    if (reason !== undefined) m.reason = reason;
    if (error !== undefined) m.error = error;
    return m;
  }

  stats(): RecordStats {
    return {
      sessionId: this.id,
      state: this.state,
      durationMs: this.durationMs(),
      tracks: this.tracks.map((t) => t.trackStats()),
    };
  }
}
