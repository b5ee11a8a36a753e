/** An upload progress bar on a terminal: bytes, rate, ETA, redrawn at most 10 times a second. */
import { bytes, seconds } from './format.js';

export class ProgressBar {
  private done = 0;
  private lastDraw = 0;
  private readonly started = Date.now();

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream,
  ) {}

  add(n: number): void {
    this.done += n;
    const now = Date.now();
    if (now - this.lastDraw >= 100 || this.done >= this.total) {
      this.lastDraw = now;
      this.draw(now);
    }
  }

  finish(): void {
    this.draw(Date.now());
    this.out.write('\n');
  }

  private draw(now: number): void {
    const elapsed = Math.max(0.001, (now - this.started) / 1000);
    const rate = this.done / elapsed;
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const width = 24;
    const filled = Math.round(frac * width);
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    const text =
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ` +
      `${bytes(this.done)} / ${bytes(this.total)}  ${bytes(rate)}/s  ETA ${seconds(eta)}`;
    this.out.write(`\r${text}\x1b[K`);
  }
}
