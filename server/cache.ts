/**
 * The control plane's directory of the offload cache: which packetized media
 * are loaded, by which worker, how big, and how many sessions use them. It
 * decides loads (one per key, however many sessions ask at once) and
 * least-recently-used evictions within cache.maxBytes; the bytes themselves
 * stay in the offload.
 */
import type { CacheLoadParams, CacheLoadResult } from '../offload/channel.js';
import type { OffloadClient } from './offload.js';
import { unavailable } from './errors.js';

interface Entry {
  key: string;
  owner: number;
  refs: number;
  lastUsed: number;
  bytes: number;
  result: CacheLoadResult | null;
  loading: Promise<CacheLoadResult> | null;
}

export interface CacheCounters {
  hits: number;
  misses: number;
  evictions: number;
  loadErrors: number;
}

export class CacheDirectory {
  private readonly entries = new Map<string, Entry>();
  private readonly offload: OffloadClient;
  readonly maxBytes: number;
  readonly counters: CacheCounters = { hits: 0, misses: 0, evictions: 0, loadErrors: 0 };
  private clock = 0;

  constructor(offload: OffloadClient, maxBytes: number) {
    this.offload = offload;
    this.maxBytes = maxBytes;
  }

  get bytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.bytes;
    return total;
  }

  get payloadBytes(): number {
    let total = 0;
    for (const e of this.entries.values()) total += e.result?.payloadBytes ?? 0;
    return total;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The worker that holds (or is loading) the entry for `key`, if any. */
  ownerOf(key: string): number | undefined {
    return this.entries.get(key)?.owner;
  }

  /**
   * A reference to the entry for `params.key`, loading it on a miss in
   * `worker` (the one that will play it). Every successful acquire must be
   * paired with release(). `estimate` is the expected size in bytes, used to
   * refuse media that cannot fit before reading it.
   */
  async acquire(params: CacheLoadParams, estimate: number, worker: number): Promise<{ owner: number; result: CacheLoadResult }> {
    let e = this.entries.get(params.key);
    if (e !== undefined) {
      e.refs++;
      e.lastUsed = ++this.clock;
      if (e.result !== null) {
        this.counters.hits++;
        return { owner: e.owner, result: e.result };
      }
      try {
        const result = await e.loading!;
        this.counters.hits++;
        return { owner: e.owner, result };
      } catch (err) {
        e.refs--;
        throw err;
      }
    }
    if (estimate > this.maxBytes) {
      throw unavailable('OFFCAST_CACHE_FULL', `the media needs about ${estimate} bytes packetized; cache.maxBytes is ${this.maxBytes}`);
    }
    this.counters.misses++;
    this.evictFor(estimate);
    const owner = worker;
    e = { key: params.key, owner, refs: 1, lastUsed: ++this.clock, bytes: estimate, result: null, loading: null };
    const entry = e;
    this.entries.set(params.key, entry);
    entry.loading = this.offload.request(owner, 'cache.load', params, 10 * 60 * 1000);
    let result: CacheLoadResult;
    try {
      result = await entry.loading;
    } catch (err) {
      this.counters.loadErrors++;
      this.entries.delete(params.key);
      throw err;
    } finally {
      entry.loading = null;
    }
    entry.result = result;
    entry.bytes = result.bytes;
    this.evictFor(0);
    if (this.bytes > this.maxBytes) {
      // Everything else in the cache is in use: this entry cannot stay.
      entry.refs--;
      if (entry.refs === 0) this.drop(entry);
      throw unavailable(
        'OFFCAST_CACHE_FULL',
        `cache is full: ${this.bytes - result.bytes} bytes are in use by sessions and this media needs ${result.bytes}; cache.maxBytes is ${this.maxBytes}`,
      );
    }
    return { owner, result };
  }

  release(key: string): void {
    const e = this.entries.get(key);
    if (e === undefined) return;
    e.refs = Math.max(0, e.refs - 1);
    e.lastUsed = ++this.clock;
    if (this.bytes > this.maxBytes) this.evictFor(0);
  }

  /** Evicts idle entries, least recently used first, until `incoming` more bytes fit. */
  private evictFor(incoming: number): void {
    if (this.bytes + incoming <= this.maxBytes) return;
    const idle = [...this.entries.values()].filter((e) => e.refs === 0 && e.result !== null).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const e of idle) {
      if (this.bytes + incoming <= this.maxBytes) break;
      this.drop(e);
    }
  }

  /** Forgets every entry a dead worker owned. */
  forgetOwner(worker: number): void {
    for (const e of [...this.entries.values()]) if (e.owner === worker && e.result !== null) this.entries.delete(e.key);
  }

  private drop(e: Entry): void {
    this.entries.delete(e.key);
    this.counters.evictions++;
    // Every worker that fetched the entry holds a view; all let go.
    void this.offload.all('cache.evict', { key: e.key }).catch(() => undefined);
  }

  /** Drops idle entries of a media file (after it was replaced or deleted). */
  forgetMedia(prefix: string): void {
    for (const e of [...this.entries.values()]) if (e.key.startsWith(prefix) && e.refs === 0 && e.result !== null) this.drop(e);
  }
}
