import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { z } from 'zod';
import { HostError } from '../contract/errors.js';
import { CODE_DIR } from '../contract/package-root.js';
import type { ServerPlugin } from './server.js';

/**
 * The live dashboard (`GET /`): a page shell and a few ES modules from `core/server/dashboard/`, served
 * as they are — no bundler, nothing from the internet. The shell holds no data of the host, so it
 * is public even with a token (the page has to load before it can ask for the token); everything
 * it shows comes from the API and the WebSocket, which stay behind the token.
 */

export interface DashboardOptions {
  /** The folder with `index.html` and its assets (default: `core/server/dashboard/`). */
  dir?: string | undefined;
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/**
 * Scripts, styles, fetches and the WebSocket from this origin only: job names, params, results and
 * log text are shown by the page, and a slip that let one of them become markup could still not
 * load or send anything elsewhere.
 */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const DEFAULT_DIR = path.join(CODE_DIR, 'server', 'dashboard');

/**
 * Files served from packages, by the name the page asks for: uPlot (the charts), straight from
 * node_modules, so there is still no build step and nothing comes from a CDN.
 */
const VENDOR: Readonly<Record<string, string>> = {
  'uPlot.esm.js': 'uplot/dist/uPlot.esm.js',
  'uPlot.min.css': 'uplot/dist/uPlot.min.css',
};

/**
 * Every file the dashboard serves, read once when the server starts: the set of names is fixed, so
 * a request can only ever name one of them (no path from a request reaches the file system).
 */
async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  const add = (name: string, body: Buffer, type: string): void => {
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(name, { body, type, etag });
  };
  const require = createRequire(import.meta.url);
  const files: Array<{ name: string; file: string; type: string }> = Object.entries(VENDOR).map(([name, specifier]) => ({
    name,
    file: require.resolve(specifier),
    type: TYPES[path.extname(name)]!,
  }));
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const type = TYPES[path.extname(entry.name)];
    if (!entry.isFile() || type === undefined || entry.name.startsWith('.')) continue;
    files.push({ name: entry.name, file: path.join(dir, entry.name), type });
  }
  // Read together, not one after the other: each waits for the disk, and the server waits for all (part of every start).
  const bodies = await Promise.all(files.map((f) => readFile(f.file)));
  for (const [i, f] of files.entries()) add(f.name, bodies[i]!, f.type);
  if (!assets.has('index.html')) throw new Error(`the dashboard folder ${dir} has no index.html`);
  return assets;
}

/** The answer to a GET of an asset: the file, or 304 when the client's copy is current. */
function respond(asset: Asset, ifNoneMatch: string | undefined): { status: 200 | 304; headers: Record<string, string>; body?: Buffer } {
  const headers: Record<string, string> = {
    // `no-cache`: keep a copy but ask every time, and an unchanged file costs a 304. The files are
    // not versioned in their URLs (no build step), so long-lived caching would run stale code after
    // an upgrade.
    'cache-control': 'no-cache',
    etag: asset.etag,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  };
  if (asset.type.startsWith('text/html')) headers['content-security-policy'] = CSP;
  if (ifNoneMatch?.split(/\s*,\s*/).includes(asset.etag)) return { status: 304, headers };
  return { status: 200, headers: { ...headers, 'content-type': asset.type }, body: asset.body };
}

/** The dashboard as a server plugin: `useServer(host, { plugins: [createDashboard()] })`. */
export function createDashboard(options: DashboardOptions = {}): ServerPlugin {
  const dir = options.dir ?? DEFAULT_DIR;
  return async (app) => {
    const assets = await loadAssets(dir);

    app.get('/', {
      config: { public: true },
      schema: { hide: true },
      handler: async (request, reply) => {
        const r = respond(assets.get('index.html')!, request.headers['if-none-match']);
        return reply.code(r.status).headers(r.headers).send(r.body);
      },
    });

    app.get('/assets/:file', {
      config: { public: true },
      schema: { hide: true, params: z.object({ file: z.string().max(200) }) },
      handler: async (request, reply) => {
        const name = request.params.file;
        const asset = name === 'index.html' ? undefined : assets.get(name);
        if (!asset) throw new HostError('NOT_FOUND', `no dashboard asset ${JSON.stringify(name.slice(0, 100))}`);
        const r = respond(asset, request.headers['if-none-match']);
        return reply.code(r.status).headers(r.headers).send(r.body);
      },
    });
  };
}

/** The dashboard with its own files: pass it to `useServer(host, { plugins: [dashboard] })`. */
export const dashboard: ServerPlugin = createDashboard();
