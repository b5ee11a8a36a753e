// The config: defaults, file, environment, validation messages and freezing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError, loadConfig, type Config, type LoadOptions } from '../../config/index.js';
import { SCHEMA, envName, type KeySpec } from '../../config/schema.js';

const MiB = 1024 * 1024;
const dir = mkdtempSync(path.join(tmpdir(), 'offcast-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let fileCount = 0;
/** Writes `text` (a string is written verbatim, anything else as JSON) to a fresh file. */
function configFile(content: unknown): string {
  const file = path.join(dir, `c${++fileCount}.json`);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** Reads a dotted key path out of a nested config. */
function at(config: Config, key: string): unknown {
  return key.split('.').reduce<unknown>((node, part) => (node as Record<string, unknown>)[part], config);
}

/** The ConfigError `opts` raise (fails the test if none). */
function configError(t: Test, opts: LoadOptions): ConfigError {
  try {
    loadConfig(opts);
  } catch (err) {
    t.type(err, ConfigError, `a ConfigError: ${(err as Error).message}`);
    return err as ConfigError;
  }
  t.fail(`expected a ConfigError for ${JSON.stringify(opts)}`);
  return new ConfigError('(none)', '(none)');
}

t.test('defaults', async (t) => {
  const config = loadConfig({ argv: [], env: {} });
  const expected: [string, unknown][] = [
    ['http.host', '127.0.0.1'],
    ['http.port', 8080],
    ['mediaRoot', './media'],
    ['recordingsRoot', './recordings'],
    ['cache.maxBytes', 256 * MiB],
    ['rtp.portMin', 20000],
    ['rtp.portMax', 29999],
    ['rtp.payloadBytes', 1200],
    ['destinations.allow', ['127.0.0.0/8', '::1/128']],
    ['sources.allow', ['127.0.0.0/8', '::1/128']],
    ['api.token', undefined],
    ['limits.maxSessions', 1000],
    ['limits.uploadBytes', 1024 * MiB],
    ['offload.workers', 1],
    ['log.level', 'info'],
  ];
  for (const [key, value] of expected) t.same(at(config, key), value, `${key} = ${JSON.stringify(value)}`);
  t.notOk('token' in config.api && config.api.token !== undefined, 'no API token by default');
  // Every key of the schema is present with its default, and nothing else.
  const flat: string[] = [];
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      const p = prefix === '' ? k : `${prefix}.${k}`;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, p);
      else flat.push(p);
    }
  };
  walk(config as unknown as Record<string, unknown>, '');
  t.same(flat.sort(), Object.keys(SCHEMA).sort(), 'the config holds exactly the schema’s keys');
  for (const [key, spec] of Object.entries(SCHEMA)) t.same(at(config, key), (spec as KeySpec).default, `${key} is its schema default`);
});

t.test('a JSON file via --config PATH, --config=PATH and OFFCAST_CONFIG', async (t) => {
  const file = configFile({ http: { port: 9001, host: '0.0.0.0' }, cache: { maxBytes: 8 * MiB }, destinations: { allow: ['10.0.0.0/8'] } });
  const ways: [string, LoadOptions][] = [
    ['--config PATH', { argv: ['--config', file], env: {} }],
    ['--config=PATH', { argv: [`--config=${file}`], env: {} }],
    ['OFFCAST_CONFIG', { argv: [], env: { OFFCAST_CONFIG: file } }],
    ['--config among other arguments', { argv: ['--verbose', '--config', file, 'extra'], env: {} }],
  ];
  for (const [name, opts] of ways) {
    const c = loadConfig(opts);
    t.equal(c.http.port, 9001, `${name}: http.port from the file`);
    t.equal(c.http.host, '0.0.0.0', `${name}: http.host from the file`);
    t.equal(c.cache.maxBytes, 8 * MiB, `${name}: cache.maxBytes from the file`);
    t.same(c.destinations.allow, ['10.0.0.0/8'], `${name}: destinations.allow from the file`);
    t.equal(c.rtp.portMin, 20000, `${name}: keys the file leaves out keep their defaults`);
  }
  // The command line names the file when both do.
  const other = configFile({ http: { port: 9002 } });
  t.equal(loadConfig({ argv: ['--config', other], env: { OFFCAST_CONFIG: file } }).http.port, 9002, '--config wins over OFFCAST_CONFIG');
  t.equal(loadConfig({ argv: [], env: { OFFCAST_CONFIG: '' } }).http.port, 8080, 'an empty OFFCAST_CONFIG means no file');
});

t.test('precedence: environment over file over defaults; overrides last', async (t) => {
  const file = configFile({ http: { port: 9001 }, rtp: { payloadBytes: 1000 }, log: { level: 'warn' } });
  const c = loadConfig({ argv: ['--config', file], env: { OFFCAST_HTTP_PORT: '9100', OFFCAST_LOG_LEVEL: 'debug' } });
  t.equal(c.http.port, 9100, 'env beats file (http.port)');
  t.equal(c.log.level, 'debug', 'env beats file (log.level)');
  t.equal(c.rtp.payloadBytes, 1000, 'file beats default when env is silent');
  t.equal(c.rtp.portMax, 29999, 'default when neither says');
  const o = loadConfig({ argv: ['--config', file], env: { OFFCAST_HTTP_PORT: '9100' }, overrides: { 'http.port': 9200 } });
  t.equal(o.http.port, 9200, 'overrides beat env');
});

/** Upper snake case written independently of envName: split at each lower->upper step. */
function expectedEnvName(key: string): string {
  const words: string[] = [];
  for (const part of key.split('.')) {
    let word = '';
    for (let i = 0; i < part.length; i++) {
      const ch = part[i]!;
      const prev = i > 0 ? part[i - 1]! : '';
      if (ch >= 'A' && ch <= 'Z' && prev !== '' && !(prev >= 'A' && prev <= 'Z')) {
        words.push(word);
        word = '';
      }
      word += ch.toUpperCase();
    }
    words.push(word);
  }
  return 'OFFCAST_' + words.join('_');
}

/** A valid value for `key` other than its default: [env text, parsed value]. */
function nonDefault(key: string, spec: KeySpec): [string, unknown] {
  switch (spec.type) {
    case 'int': {
      const special: Record<string, number> = { 'rtp.portMin': 20002, 'rtp.portMax': 29001 };
      const def = spec.default as number;
      const v = special[key] ?? (def + 1 <= (spec.max ?? Infinity) ? def + 1 : def - 1);
      return [String(v), v];
    }
    case 'number': {
      const def = spec.default as number;
      const v = def / 2;
      return [String(v), v];
    }
    case 'string': {
      if (spec.oneOf !== undefined) {
        const v = spec.oneOf.find((x) => x !== spec.default)!;
        return [v, v];
      }
      return [`/srv/${key}`, `/srv/${key}`];
    }
    case 'optional-string':
      return ['s3cret-token', 's3cret-token'];
    case 'cidrs':
      return ['10.0.0.0/8, 192.168.1.7 ,fd00::/8', ['10.0.0.0/8', '192.168.1.7', 'fd00::/8']];
    case 'bool':
      return [spec.default ? 'false' : 'true', !spec.default];
  }
}

t.test('every key has its environment variable, and setting it takes effect', async (t) => {
  const known: [string, string][] = [
    ['cache.maxBytes', 'OFFCAST_CACHE_MAX_BYTES'],
    ['http.host', 'OFFCAST_HTTP_HOST'],
    ['mediaRoot', 'OFFCAST_MEDIA_ROOT'],
    ['rtp.portMin', 'OFFCAST_RTP_PORT_MIN'],
    ['limits.maxSessions', 'OFFCAST_LIMITS_MAX_SESSIONS'],
    ['api.token', 'OFFCAST_API_TOKEN'],
    ['destinations.allow', 'OFFCAST_DESTINATIONS_ALLOW'],
    ['offload.workers', 'OFFCAST_OFFLOAD_WORKERS'],
  ];
  for (const [key, name] of known) t.equal(envName(key), name, `${key} -> ${name}`);
  const names = new Set<string>();
  for (const [key, raw] of Object.entries(SCHEMA)) {
    const spec = raw as KeySpec;
    const name = envName(key);
    t.equal(name, expectedEnvName(key), `${key}: env name ${name}`);
    t.match(name, /^OFFCAST_[A-Z0-9]+(_[A-Z0-9]+)*$/, `${name} is upper snake case`);
    t.notOk(names.has(name), `${name} names one key only`);
    names.add(name);
    const [text, value] = nonDefault(key, spec);
    t.notSame(value, spec.default, `${key}: the test value differs from the default`);
    const c = loadConfig({ argv: [], env: { [name]: text } });
    t.same(at(c, key), value, `${name}=${text} sets ${key}`);
    // and it beats the file
    const file = configFile(nestOne(key, spec.default ?? 'file-value'));
    const fromBoth = loadConfig({ argv: ['--config', file], env: { [name]: text } });
    t.same(at(fromBoth, key), value, `${name} beats the file for ${key}`);
  }
  t.notOk(names.has('OFFCAST_CONFIG'), 'no key collides with OFFCAST_CONFIG');
});

/** `{a: {b: value}}` for key `a.b`. */
function nestOne(key: string, value: unknown): Record<string, unknown> {
  const parts = key.split('.');
  let node: unknown = value;
  for (let i = parts.length - 1; i >= 0; i--) node = { [parts[i]!]: node };
  return node as Record<string, unknown>;
}

t.test('environment parsing', async (t) => {
  t.equal(loadConfig({ argv: [], env: { OFFCAST_HTTP_PORT: ' 8081 ' } }).http.port, 8081, 'whitespace around a number is fine');
  t.equal(loadConfig({ argv: [], env: { OFFCAST_CACHE_MAX_BYTES: '2e6' } }).cache.maxBytes, 2e6, 'exponent notation');
  t.equal(loadConfig({ argv: [], env: { OFFCAST_API_TOKEN: '' } }).api.token, undefined, 'an empty token means none');
  t.same(loadConfig({ argv: [], env: { OFFCAST_DESTINATIONS_ALLOW: '127.0.0.1' } }).destinations.allow, ['127.0.0.1'], 'a bare address is a CIDR');
  t.equal(loadConfig({ argv: [], env: { OFFCAST_RTP_PORT_MIN: '40000', OFFCAST_RTP_PORT_MAX: '40001' } }).rtp.portMax, 40001, 'one pair is enough');
  t.equal(
    loadConfig({ argv: [], env: { OFFCAST_HTTP_PORT: '8081', OFFCAST_HTTP_PORTX: 'junk', OFFCAST_NOT_A_KEY: 'x' } }).http.port,
    8081,
    'unrelated OFFCAST_ variables are ignored',
  );
});

t.test('validation errors name the key and the reason', async (t) => {
  const cases: { name: string; opts: LoadOptions; key: string; reason: RegExp }[] = [
    { name: 'bad number in env', opts: { env: { OFFCAST_HTTP_PORT: '80x' } }, key: 'http.port', reason: /OFFCAST_HTTP_PORT="80x" is not a number/ },
    { name: 'empty number in env', opts: { env: { OFFCAST_RTP_PAYLOAD_BYTES: '' } }, key: 'rtp.payloadBytes', reason: /is not a number/ },
    { name: 'hex is not a number', opts: { env: { OFFCAST_HTTP_PORT: '0x1f90' } }, key: 'http.port', reason: /is not a number/ },
    { name: 'Infinity is not a number', opts: { env: { OFFCAST_PACING_SPREAD: 'Infinity' } }, key: 'pacing.spread', reason: /is not a number/ },
    {
      name: 'number as a string in the file',
      opts: { argv: ['--config', configFile({ http: { port: '8080' } })] },
      key: 'http.port',
      reason: /must be a number/,
    },
    {
      name: 'fraction for an integer',
      opts: { env: { OFFCAST_HTTP_PORT: '8080.5' } },
      key: 'http.port',
      reason: /must be an integer, got 8080.5 \(from OFFCAST_HTTP_PORT\)/,
    },
    { name: 'above max', opts: { env: { OFFCAST_HTTP_PORT: '70000' } }, key: 'http.port', reason: /must be <= 65535, got 70000/ },
    {
      name: 'below min',
      opts: { argv: ['--config', configFile({ cache: { maxBytes: 1000 } })] },
      key: 'cache.maxBytes',
      reason: /must be >= 1048576, got 1000/,
    },
    { name: 'spread above 1', opts: { env: { OFFCAST_PACING_SPREAD: '1.5' } }, key: 'pacing.spread', reason: /must be <= 1/ },
    { name: 'zero workers', opts: { env: { OFFCAST_OFFLOAD_WORKERS: '0' } }, key: 'offload.workers', reason: /must be >= 1, got 0/ },
    { name: 'odd portMin', opts: { env: { OFFCAST_RTP_PORT_MIN: '20001' } }, key: 'rtp.portMin', reason: /must be even.*20001/ },
    {
      name: 'portMax = portMin',
      opts: { env: { OFFCAST_RTP_PORT_MIN: '30000', OFFCAST_RTP_PORT_MAX: '30000' } },
      key: 'rtp.portMax',
      reason: /at least rtp.portMin \+ 1 \(30001\), got 30000/,
    },
    {
      name: 'portMax < portMin',
      opts: { argv: ['--config', configFile({ rtp: { portMin: 40000, portMax: 30000 } })] },
      key: 'rtp.portMax',
      reason: /at least rtp.portMin \+ 1/,
    },
    {
      name: 'CIDR prefix too long',
      opts: { env: { OFFCAST_DESTINATIONS_ALLOW: '127.0.0.0/8,10.0.0.0/33' } },
      key: 'destinations.allow',
      reason: /"10.0.0.0\/33" has a bad prefix length \(0-32\)/,
    },
    {
      name: 'IPv6 prefix too long',
      opts: { env: { OFFCAST_SOURCES_ALLOW: '::1/129' } },
      key: 'sources.allow',
      reason: /"::1\/129" has a bad prefix length \(0-128\)/,
    },
    { name: 'CIDR prefix not a number', opts: { env: { OFFCAST_DESTINATIONS_ALLOW: '10.0.0.0/8x' } }, key: 'destinations.allow', reason: /bad prefix length/ },
    {
      name: 'not an address',
      opts: { argv: ['--config', configFile({ destinations: { allow: ['example.com'] } })] },
      key: 'destinations.allow',
      reason: /"example.com" is not an IP address or CIDR/,
    },
    {
      name: 'CIDRs not a list',
      opts: { argv: ['--config', configFile({ destinations: { allow: 5 } })] },
      key: 'destinations.allow',
      reason: /must be a list of CIDRs/,
    },
    {
      name: 'CIDR list with a number',
      opts: { argv: ['--config', configFile({ sources: { allow: ['127.0.0.1', 7] } })] },
      key: 'sources.allow',
      reason: /must be a list of CIDRs/,
    },
    { name: 'unknown key in file', opts: { argv: ['--config', configFile({ http: { hots: 'x' } })] }, key: 'http.hots', reason: /unknown key in .*\.json/ },
    { name: 'unknown top-level key in file', opts: { argv: ['--config', configFile({ medaRoot: '/x' })] }, key: 'medaRoot', reason: /unknown key/ },
    { name: 'section given a scalar', opts: { argv: ['--config', configFile({ cache: 5 })] }, key: 'cache', reason: /unknown key/ },
    { name: 'invalid JSON', opts: { argv: ['--config', configFile('{"http": {"port": 80,}}')] }, key: '--config', reason: /is not valid JSON/ },
    { name: 'empty file', opts: { argv: ['--config', configFile('')] }, key: '--config', reason: /is not valid JSON/ },
    { name: 'array JSON', opts: { argv: ['--config', configFile('[1, 2]')] }, key: '--config', reason: /must hold a JSON object/ },
    { name: 'null JSON', opts: { argv: ['--config', configFile('null')] }, key: '--config', reason: /must hold a JSON object/ },
    { name: 'string JSON', opts: { argv: ['--config', configFile('"http"')] }, key: '--config', reason: /must hold a JSON object/ },
    { name: 'missing file', opts: { argv: ['--config', path.join(dir, 'nope.json')] }, key: '--config', reason: /cannot read .*nope\.json/ },
    {
      name: 'missing file from OFFCAST_CONFIG',
      opts: { env: { OFFCAST_CONFIG: path.join(dir, 'nope2.json') } },
      key: '--config',
      reason: /cannot read .*nope2\.json/,
    },
    { name: '--config without a path', opts: { argv: ['--config'] }, key: '--config', reason: /needs a file path/ },
    {
      name: 'unknown log level',
      opts: { env: { OFFCAST_LOG_LEVEL: 'verbose' } },
      key: 'log.level',
      reason: /must be one of fatal, error, warn, info, debug, trace, silent, got "verbose"/,
    },
    { name: 'empty host', opts: { env: { OFFCAST_HTTP_HOST: '' } }, key: 'http.host', reason: /must be a non-empty string/ },
    { name: 'token not a string', opts: { argv: ['--config', configFile({ api: { token: 1234 } })] }, key: 'api.token', reason: /must be a string/ },
    { name: 'unknown override', opts: { overrides: { 'http.hots': 'x' } }, key: 'http.hots', reason: /unknown key/ },
    { name: 'bad override', opts: { overrides: { 'limits.maxSessions': 0 } }, key: 'limits.maxSessions', reason: /must be >= 1, got 0/ },
  ];
  for (const c of cases) {
    const err = configError(t, { argv: [], env: {}, ...c.opts });
    t.equal(err.key, c.key, `${c.name}: names ${c.key}`);
    t.ok(err.message.startsWith(`config ${c.key}: `), `${c.name}: the message starts with the key (${err.message})`);
    t.match(err.message, c.reason, `${c.name}: says why`);
  }
});

// Keys inherited from Object.prototype are not config keys: a file that sets one
// must fail like any other unknown key instead of slipping through.
t.test('keys named like Object.prototype members are unknown keys too', async (t) => {
  for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    const file = configFile(`{"${key}": {"x": 1}}`);
    let error: unknown = null;
    let config: Config | null = null;
    try {
      config = loadConfig({ argv: ['--config', file], env: {} });
    } catch (err) {
      error = err;
    }
    t.type(error, ConfigError, `{"${key}": …} in the file is rejected`);
    if (error instanceof ConfigError) t.equal(error.key, key, `the error names ${key}`);
    if (config !== null) t.equal(typeof config.toString, 'function', `the config keeps a working toString after {"${key}": …}`);
  }
  t.type(
    (() => {
      try {
        loadConfig({ argv: [], env: {}, overrides: { constructor: 1 } });
      } catch (err) {
        return err;
      }
      return null;
    })(),
    ConfigError,
    'an override named constructor is rejected',
  );
});

t.test('the result is deeply frozen', async (t) => {
  const c = loadConfig({ argv: [], env: { OFFCAST_API_TOKEN: 'tok' } });
  // ESM modules are strict: assignments to frozen objects throw.
  const mutable = c as unknown as {
    http: { port: number };
    mediaRoot: string;
    newKey: number;
    api: { token?: string };
    destinations: { allow: string[] };
    sources: { allow: string[] };
  };
  t.throws(
    () => {
      mutable.http.port = 1;
    },
    TypeError,
    'nested assignment throws',
  );
  t.throws(
    () => {
      mutable.mediaRoot = '/elsewhere';
    },
    TypeError,
    'top-level assignment throws',
  );
  t.throws(
    () => {
      mutable.newKey = 1;
    },
    TypeError,
    'adding a key throws',
  );
  t.throws(
    () => {
      delete mutable.api.token;
    },
    TypeError,
    'deleting a key throws',
  );
  t.throws(() => mutable.destinations.allow.push('0.0.0.0/0'), TypeError, 'the allow list cannot grow');
  t.throws(
    () => {
      mutable.sources.allow[0] = '0.0.0.0/0';
    },
    TypeError,
    'the allow list cannot change',
  );
  t.equal(c.http.port, 8080, 'values unchanged');
  t.same(c.destinations.allow, ['127.0.0.0/8', '::1/128'], 'allow list unchanged');
  const frozen = (v: unknown): boolean => v === null || typeof v !== 'object' || (Object.isFrozen(v) && Object.values(v).every(frozen));
  t.ok(frozen(c), 'every object in the config is frozen');
  // A second load is independent of the first and of the schema defaults.
  const again = loadConfig({ argv: [], env: {} });
  t.equal(again.api.token, undefined, 'a later load does not see the earlier env');
});
