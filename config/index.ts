/**
 * One config for the process: embedded defaults, then an optional JSON file
 * (`--config PATH` or OFFCAST_CONFIG), then OFFCAST_* variables. Validated once,
 * then frozen. The server's managers take the whole frozen Config; the offload
 * workers get only the few values they need (WorkerInit) when they start.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { SCHEMA, envName, type KeySpec } from './schema.js';

export interface Config {
  readonly http: { readonly host: string; readonly port: number };
  readonly mediaRoot: string;
  readonly recordingsRoot: string;
  readonly cache: { readonly maxBytes: number };
  readonly rtp: { readonly portMin: number; readonly portMax: number; readonly payloadBytes: number; readonly rtcpIntervalMs: number };
  readonly pacing: { readonly spread: number };
  readonly destinations: { readonly allow: readonly string[] };
  readonly sources: { readonly allow: readonly string[] };
  readonly api: { readonly token?: string };
  readonly limits: {
    readonly maxSessions: number;
    readonly uploadBytes: number;
    readonly uploads: number;
    readonly uploadTimeoutMs: number;
    readonly uploadIdleMs: number;
  };
  readonly offload: { readonly workers: number; readonly nativeSend: boolean };
  readonly rtsp: { readonly port: number; readonly sessionTimeoutMs: number; readonly requestTimeoutMs: number; readonly maxConnections: number };
  readonly record: {
    readonly idleTimeoutMs: number;
    readonly maxDurationMs: number;
    readonly reorderPackets: number;
    readonly reorderMs: number;
    readonly holdMs: number;
    readonly flushMs: number;
  };
  readonly log: { readonly level: string; readonly format: 'auto' | 'pretty' | 'json' };
}

export class ConfigError extends Error {
  readonly key: string;
  constructor(key: string, reason: string) {
    super(`config ${key}: ${reason}`);
    this.name = 'ConfigError';
    this.key = key;
  }
}

export interface LoadOptions {
  /** Command-line arguments (default process.argv.slice(2)); `--config PATH` is read from them. */
  argv?: readonly string[];
  /** Environment (default process.env). */
  env?: Record<string, string | undefined>;
  /** Overrides applied last, by key path (used by tests and embedders). */
  overrides?: Record<string, unknown>;
}

/** Build, validate and freeze the config. Throws ConfigError naming the key. */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const argv = opts.argv ?? process.argv.slice(2);
  const values = new Map<string, unknown>();
  for (const [key, spec] of Object.entries(SCHEMA)) values.set(key, (spec as KeySpec).default);

  const file = configFilePath(argv, env);
  if (file !== undefined) {
    for (const [key, value] of Object.entries(readConfigFile(file))) values.set(key, checkValue(key, value, 'file'));
  }
  for (const key of values.keys()) {
    const raw = env[envName(key)];
    if (raw !== undefined) values.set(key, checkValue(key, parseEnv(key, raw), 'env'));
  }
  for (const [key, value] of Object.entries(opts.overrides ?? {})) {
    if (!Object.hasOwn(SCHEMA, key)) throw new ConfigError(key, 'unknown key');
    values.set(key, checkValue(key, value, 'override'));
  }
  checkRelations(values);
  return deepFreeze(nest(values)) as unknown as Config;
}

function configFilePath(argv: readonly string[], env: Record<string, string | undefined>): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--config') {
      const next = argv[i + 1];
      if (next === undefined) throw new ConfigError('--config', 'needs a file path');
      return next;
    }
    if (arg.startsWith('--config=')) return arg.slice('--config='.length);
  }
  const fromEnv = env.OFFCAST_CONFIG;
  return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
}

/** Flattens the JSON file to key paths; unknown keys are errors, so typos don't pass silently. */
function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('--config', `cannot read ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError('--config', `${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(doc)) throw new ConfigError('--config', `${file} must hold a JSON object`);
  // No prototype: a "__proto__" key must be an own key like any other.
  const flat = Object.create(null) as Record<string, unknown>;
  const walk = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix === '' ? k : `${prefix}.${k}`;
      if (Object.hasOwn(SCHEMA, path)) flat[path] = v;
      else if (isPlainObject(v) && Object.keys(SCHEMA).some((key) => key.startsWith(path + '.'))) walk(v, path);
      else throw new ConfigError(path, `unknown key in ${file}`);
    }
  };
  walk(doc, '');
  return flat;
}

function parseEnv(key: string, raw: string): unknown {
  const spec = SCHEMA[key as keyof typeof SCHEMA] as KeySpec;
  const name = envName(key);
  switch (spec.type) {
    case 'int':
    case 'number': {
      const trimmed = raw.trim();
      if (trimmed === '' || !/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(trimmed)) {
        throw new ConfigError(key, `${name}=${JSON.stringify(raw)} is not a number`);
      }
      return Number(trimmed);
    }
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(key, `${name}=${JSON.stringify(raw)} is not a boolean (true/false)`);
    case 'cidrs':
      return raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    default:
      return raw;
  }
}

function checkValue(key: string, value: unknown, source: string): unknown {
  const spec = SCHEMA[key as keyof typeof SCHEMA] as KeySpec;
  const from = source === 'env' ? ` (from ${envName(key)})` : '';
  switch (spec.type) {
    case 'int':
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConfigError(key, `must be a number${from}`);
      if (spec.type === 'int' && !Number.isInteger(value)) throw new ConfigError(key, `must be an integer, got ${value}${from}`);
      if (spec.min !== undefined && value < spec.min) throw new ConfigError(key, `must be >= ${spec.min}, got ${value}${from}`);
      if (spec.max !== undefined && value > spec.max) throw new ConfigError(key, `must be <= ${spec.max}, got ${value}${from}`);
      return value;
    }
    case 'bool':
      if (typeof value !== 'boolean') throw new ConfigError(key, `must be true or false${from}`);
      return value;
    case 'string':
      if (typeof value !== 'string' || value === '') throw new ConfigError(key, `must be a non-empty string${from}`);
      if (spec.oneOf && !spec.oneOf.includes(value)) throw new ConfigError(key, `must be one of ${spec.oneOf.join(', ')}, got ${JSON.stringify(value)}${from}`);
      return value;
    case 'optional-string':
      if (value === undefined || value === null || value === '') return undefined;
      if (typeof value !== 'string') throw new ConfigError(key, `must be a string${from}`);
      return value;
    case 'cidrs': {
      const list =
        typeof value === 'string'
          ? value
              .split(',')
              .map((s) => s.trim())
              .filter((s) => s !== '')
          : value;
      if (!Array.isArray(list) || list.some((item) => typeof item !== 'string')) {
        throw new ConfigError(key, `must be a list of CIDRs${from}`);
      }
      for (const cidr of list as string[]) {
        const reason = cidrProblem(cidr);
        if (reason !== null) throw new ConfigError(key, `${JSON.stringify(cidr)} ${reason}${from}`);
      }
      return [...(list as string[])];
    }
  }
}

/** null when `cidr` is a valid IPv4/IPv6 CIDR (a bare address counts as /32 or /128). */
export function cidrProblem(cidr: string): string | null {
  const slash = cidr.indexOf('/');
  const addr = slash === -1 ? cidr : cidr.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return 'is not an IP address or CIDR';
  if (slash === -1) return null;
  const prefixText = cidr.slice(slash + 1);
  const prefix = Number(prefixText);
  const maxPrefix = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(prefixText) || prefix > maxPrefix) return `has a bad prefix length (0-${maxPrefix})`;
  return null;
}

function checkRelations(values: Map<string, unknown>): void {
  const min = values.get('rtp.portMin') as number;
  const max = values.get('rtp.portMax') as number;
  if (min % 2 !== 0) throw new ConfigError('rtp.portMin', `must be even (RTP uses even ports), got ${min}`);
  if (max < min + 1) throw new ConfigError('rtp.portMax', `must be at least rtp.portMin + 1 (${min + 1}), got ${max}`);
}

function nest(values: Map<string, unknown>): Record<string, unknown> {
  const root: Record<string, unknown> = {};
  for (const [key, value] of values) {
    const parts = key.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts[parts.length - 1]!] = value;
  }
  return root;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export { SCHEMA, envName } from './schema.js';
