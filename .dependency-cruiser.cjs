/**
 * The layers of core/ (README "Layout"). `npm run lint` runs this; a violation fails it.
 *
 *   cli ──────────────► contract
 *   loader ─► server ─► engine ─► schedule ─► contract
 *                         ├─► notify ───────► contract
 *     │                   ├─(backends.ts)─► store ───► contract
 *     │                   │              └─► cluster ─► contract
 *     └───────────────────┴─► workers ─► contract
 *
 * Type-only imports count too (tsPreCompilationDeps): a type that points upward is a cycle
 * waiting to happen.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      comment: 'An import cycle anywhere in core/, type imports included.',
      severity: 'error',
      from: { path: '^core/' },
      to: { circular: true },
    },
    {
      name: 'contract-is-the-bottom',
      comment: 'contract/ imports nothing else of core/.',
      severity: 'error',
      from: { path: '^core/contract/' },
      to: { path: '^core/', pathNot: '^core/contract/' },
    },
    {
      name: 'schedule-on-contract-only',
      comment: 'schedule/ (cron, the scheduler, schedules in words) builds on contract/ alone.',
      severity: 'error',
      from: { path: '^core/schedule/' },
      to: { path: '^core/', pathNot: '^core/(contract|schedule)/' },
    },
    {
      name: 'store-on-contract-only',
      comment: 'store/ (the local backend) implements contract/backend.ts and knows nothing of the engine.',
      severity: 'error',
      from: { path: '^core/store/' },
      to: { path: '^core/', pathNot: '^core/(contract|store)/' },
    },
    {
      name: 'workers-on-contract-only',
      comment: 'workers/ (the thread pool, the thread, plugin code evaluation) builds on contract/ alone: a thread loads nothing of the host.',
      severity: 'error',
      from: { path: '^core/workers/' },
      to: { path: '^core/', pathNot: '^core/(contract|workers)/' },
    },
    {
      name: 'notify-on-contract-only',
      comment:
        'notify/ (destinations, what a receiver gets, one attempt and its meaning) builds on contract/ alone: it records nothing and knows no backend, no route.',
      severity: 'error',
      from: { path: '^core/notify/' },
      to: { path: '^core/', pathNot: '^core/(contract|notify)/' },
    },
    {
      name: 'cluster-on-contract-only',
      comment: 'cluster/ (the redis backend) implements contract/backend.ts like store/ and knows nothing of the engine, the edges or the local store.',
      severity: 'error',
      from: { path: '^core/cluster/' },
      to: { path: '^core/', pathNot: '^core/(contract|cluster)/' },
    },
    {
      name: 'engine-below-the-edges',
      comment: 'engine/ never imports server/, loader/ or cli/.',
      severity: 'error',
      from: { path: '^core/engine/' },
      to: { path: '^core/(server|loader|cli)/' },
    },
    {
      name: 'engine-reaches-runs-through-the-seam',
      comment: 'Only engine/backends.ts knows a backend implementation; the rest talks to contract/backend.ts.',
      severity: 'error',
      from: { path: '^core/engine/', pathNot: '^core/engine/backends\\.ts$' },
      to: { path: '^core/(store|cluster)/' },
    },
    {
      name: 'server-on-the-engine',
      comment: 'server/ talks to the host (engine/) and contract/, never to a backend, the worker pool, the loader or the CLI.',
      severity: 'error',
      from: { path: '^core/server/' },
      to: { path: '^core/(store|cluster|workers|notify|loader|cli)/' },
    },
    {
      name: 'loader-above-server',
      comment: 'loader/ wires a process: engine, server, workers (plugin code evaluation) and contract; not the CLI nor a backend.',
      severity: 'error',
      from: { path: '^core/loader/' },
      to: { path: '^core/(store|cluster|cli)/' },
    },
    {
      name: 'cli-on-contract-only',
      comment: 'cli/ imports only contract/ and its own client; the host reaches it through bin.mjs.',
      severity: 'error',
      from: { path: '^core/cli/' },
      to: { path: '^core/', pathNot: '^core/(contract|cli)/' },
    },
    {
      name: 'client-imports-nothing-of-the-host',
      comment: 'The HTTP client (cli/client*.ts) is usable on its own: it imports nothing else of core/.',
      severity: 'error',
      from: { path: '^core/cli/client' },
      to: { path: '^core/', pathNot: '^core/cli/client' },
    },
    {
      name: 'index-is-the-face',
      comment: 'core/index.ts is the package export list; nothing inside core/ imports it.',
      severity: 'error',
      from: { path: '^core/' },
      to: { path: '^core/index\\.ts$' },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'The dashboard imports uPlot by the name the server gives it (a file of node_modules served as an asset).',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true, pathNot: '^\\./uPlot\\.esm\\.js$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js', '.mjs', '.json'],
    },
  },
};
