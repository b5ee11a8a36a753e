/**
 * Tools the tests take from the machine (ffmpeg, GStreamer plugins, tshark,
 * Chromium, the native addon, root for tmpfs mounts), and the one rule for a
 * missing one: the test skips and says why, except with CI=true, where it fails
 * — .ci/run installs every tool, so a skip in CI would hide a broken install.
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const IN_CI = process.env.CI === 'true';

/** Reports a missing tool: a failure with CI=true, else nothing. Returns `reason` (a skip message). */
export function missingTool(reason: string): string {
  if (IN_CI) t.fail(`${reason} — CI=true: .ci/run installs it, so this is a failure, not a skip`);
  return reason;
}

/** tap's `skip` option: false when `available`; else the reason (and, with CI=true, a failure). */
export function skipUnless(available: boolean, reason: string): false | string {
  return available ? false : missingTool(reason);
}

/** Skips the rest of a file (its top level) for a missing tool; with CI=true, fails instead. */
export function skipFile(reason: string): void {
  if (IN_CI) missingTool(reason);
  else {
    t.comment(reason);
    t.skip(reason, () => undefined);
  }
}

const runs = (cmd: string, args: string[]): boolean => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
const cached = <T>(f: () => T): (() => T) => {
  let v: { value: T } | undefined;
  return () => (v ??= { value: f() }).value;
};

/** ffmpeg and ffprobe both run (a broken install, e.g. a missing shared library, counts as missing). */
export const hasFfmpeg = cached(() => runs('ffmpeg', ['-version']) && runs('ffprobe', ['-version']));
export const hasTshark = cached(() => runs('tshark', ['--version']));
export const hasPython = cached(() => runs('python3', ['--version']));
/** Root, which mounting a tmpfs needs. */
export const isRoot = cached(() => process.getuid?.() === 0);
export const chromiumPath = cached(() => ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find((p) => existsSync(p)));
