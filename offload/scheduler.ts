/**
 * One timing wheel per worker paces every stream it carries: 1 ms slots, a
 * power-of-two ring, items linked intrusively (no allocation when scheduling),
 * driven by a single timer. Per-stream timers do worse at thousands of streams.
 */

export interface WheelItem {
  /** Wall time (ms, performance.now() clock) at which run() is due. */
  due: number;
  /** Intrusive links; owned by the wheel. */
  wheelNext: WheelItem | null;
  wheelPrev: WheelItem | null;
  wheelSlot: number;
  /**
   * Does the work that is due at `now`; returns the next due time, or -1 to
   * leave the wheel.
   */
  run(now: number): number;
}

const SLOTS = 4096; // 4.096 s horizon; later items go round again
const MASK = SLOTS - 1;

export interface WheelStats {
  /** Scheduler lag: how late each tick ran (ms) — histogram fed by the caller. */
  onLag?: (lagMs: number) => void;
  /** Runs after each tick's items (the batched sender flushes here). */
  afterTick?: () => void;
}

export class TimingWheel {
  private readonly heads: (WheelItem | null)[] = new Array<WheelItem | null>(SLOTS).fill(null);
  private readonly now: () => number;
  /** Absolute ms slot last processed. */
  private cursor: number;
  private items = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;
  private running = false;
  private readonly onTick = (): void => this.tick();
  private readonly stats: WheelStats;

  constructor(now: () => number = () => performance.now(), stats: WheelStats = {}) {
    this.now = now;
    this.cursor = Math.floor(now());
    this.stats = stats;
  }

  get size(): number {
    return this.items;
  }

  /** Schedules (or reschedules) `item` at `due`. */
  schedule(item: WheelItem, due: number): void {
    if (item.wheelSlot >= 0) this.unlink(item);
    item.due = due;
    let slot = Math.floor(due);
    if (slot <= this.cursor) slot = this.cursor + 1;
    item.wheelSlot = slot & MASK;
    const head = this.heads[item.wheelSlot]!;
    item.wheelPrev = null;
    item.wheelNext = head;
    if (head !== null) head.wheelPrev = item;
    this.heads[item.wheelSlot] = item;
    this.items++;
    if (!this.running) this.arm(slot);
  }

  cancel(item: WheelItem): void {
    if (item.wheelSlot >= 0) this.unlink(item);
  }

  private unlink(item: WheelItem): void {
    if (item.wheelPrev !== null) item.wheelPrev.wheelNext = item.wheelNext;
    else this.heads[item.wheelSlot] = item.wheelNext;
    if (item.wheelNext !== null) item.wheelNext.wheelPrev = item.wheelPrev;
    item.wheelNext = null;
    item.wheelPrev = null;
    item.wheelSlot = -1;
    this.items--;
  }

  private arm(slot: number): void {
    if (this.items === 0) return;
    if (slot >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timerAt = slot;
    const delay = Math.max(0, slot - this.now());
    this.timer = setTimeout(this.onTick, delay);
  }

  private tick(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = this.now();
    const target = Math.floor(now);
    if (this.stats.onLag !== undefined && target > this.cursor) {
      // How late this tick runs relative to the first slot it serves.
      this.stats.onLag(now - (this.cursor + 1));
    }
    this.running = true;
    // Catch up slot by slot (after a stall there may be many); cap the walk at one revolution.
    const from = target - this.cursor > SLOTS ? target - SLOTS : this.cursor + 1;
    for (let slot = from; slot <= target; slot++) {
      this.cursor = slot;
      const idx = slot & MASK;
      let item: WheelItem | null = this.heads[idx] ?? null;
      // Detach the whole list first: items rescheduled into this same slot wait for its next turn.
      this.heads[idx] = null;
      while (item !== null) {
        const next: WheelItem | null = item.wheelNext;
        item.wheelNext = null;
        item.wheelPrev = null;
        item.wheelSlot = -1;
        this.items--;
        if (item.due >= slot + SLOTS) {
          // Not this revolution.
          this.schedule(item, item.due);
        } else {
          const again = item.run(now);
          if (again >= 0) this.schedule(item, again);
        }
        item = next;
      }
    }
    this.cursor = target;
    this.running = false;
    this.stats.afterTick?.();
    if (this.items > 0) this.arm(this.nextSlot());
  }

  /** The next non-empty slot after the cursor (scans at most one revolution). */
  private nextSlot(): number {
    for (let s = this.cursor + 1; s <= this.cursor + SLOTS; s++) {
      if (this.heads[s & MASK] !== null) return s;
    }
    return this.cursor + SLOTS;
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}
