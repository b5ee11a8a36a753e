// Architecture rule (`npm run arch`, also part of `npm run lint`): layers point down,
// server -> offload -> storage -> config, and the server reaches into the offload only
// through its channel module (offload/channel.ts) and its public entry (offload/index.ts).
// cli/ is a client of the HTTP API: no layer may import it.

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'config-imports-nothing-above',
      comment: 'config/ is the lowest layer: it imports no other layer.',
      severity: 'error',
      from: { path: '^config/' },
      to: { path: '^(storage|offload|server|cli)/' },
    },
    {
      name: 'storage-imports-only-config',
      comment: 'storage/ may import config/ only, never the offload, the server or the CLI.',
      severity: 'error',
      from: { path: '^storage/' },
      to: { path: '^(offload|server|cli)/' },
    },
    {
      name: 'offload-imports-no-server',
      comment: 'offload/ may import storage/ and config/, never the server or the CLI.',
      severity: 'error',
      from: { path: '^offload/' },
      to: { path: '^(server|cli)/' },
    },
    {
      name: 'server-uses-offload-channel-only',
      comment: 'server/ reaches the offload through offload/channel.ts and the public entry offload/index.ts only.',
      severity: 'error',
      from: { path: '^server/' },
      to: { path: '^offload/', pathNot: '^offload/(channel|index)[.]ts$' },
    },
    {
      name: 'no-layer-imports-cli',
      comment: 'the CLI is an HTTP client on top: nothing imports it.',
      severity: 'error',
      from: { path: '^(config|storage|offload|server)/' },
      to: { path: '^cli/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|test|\\.tap)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'] },
  },
};
