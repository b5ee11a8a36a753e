/**
 * The optional native sender (offload/native/sendbatch.c, built by `npm install`
 * with node-gyp). When it is missing, the offload sends with Node's dgram.
 */
import { createRequire } from 'node:module';
import type { EngineAddon } from './engine.js';

export type SendBatch = (fds: Int32Array, buf: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, status: Int32Array, count: number) => number;
/** memcpy of `len` bytes; throws on a range outside either array. */
export type CopyBytes = (dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number) => void;
export interface NativeSender {
  sendBatch: SendBatch;
  copyBytes: CopyBytes;
}

let loaded: NativeSender | null | undefined;
let loadError: string | null = null;

export function nativeSender(): NativeSender | null {
  if (loaded !== undefined) return loaded;
  try {
    const require = createRequire(import.meta.url);
    // From offload/native (sources) or dist/offload/native (compiled): the build lives beside the sources.
    // OFFCAST_NATIVE_ADDON names another build, and then only that one (scripts/sanitize.sh: the sanitizer build).
    const override = process.env.OFFCAST_NATIVE_ADDON;
    const candidates =
      override !== undefined && override !== ''
        ? [new URL(`file://${override}`)]
        : [
            new URL('./build/Release/offcast_native.node', import.meta.url),
            new URL('../../../offload/native/build/Release/offcast_native.node', import.meta.url),
          ];
    let mod: NativeSender | null = null;
    for (const c of candidates) {
      try {
        mod = require(c.pathname) as NativeSender;
        break;
      } catch (err) {
        loadError = (err as Error).message;
      }
    }
    loaded = mod !== null && typeof mod.sendBatch === 'function' && typeof mod.copyBytes === 'function' ? mod : null;
  } catch (err) {
    loadError = (err as Error).message;
    loaded = null;
  }
  return loaded;
}

export function nativeLoadError(): string | null {
  return loadError;
}

/** The pacing engine's functions (offload/native/engine.c), when the addon has them. */
export function engineAddon(): EngineAddon | null {
  const mod = nativeSender() as object | null;
  return mod !== null && 'engineOpen' in mod && typeof mod.engineOpen === 'function' ? (mod as EngineAddon) : null;
}
