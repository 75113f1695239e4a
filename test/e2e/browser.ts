import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import type { Role } from '../../core/contract/access.js';
import { silentLogger } from '../../core/contract/logger.js';
import { createHost, type Host } from '../../core/engine/host.js';
import { usePluginDirectory } from '../../core/loader/plugin-directory.js';
import { dashboard } from '../../core/server/dashboard.js';
import { useServer } from '../../core/server/server.js';
import { type Tap, tempDir } from '../helpers.js';

/**
 * Browser tests drive Debian's Chromium (`apt-get install -y chromium`; `.ci/run` installs it) with
 * playwright-core: no browser download. The flags keep it off the network it would otherwise
 * keep trying to reach, and every launch gets a fresh profile.
 */
export const CHROMIUM = '/usr/bin/chromium';
export const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A headless Chromium with a fresh profile under `dir` (and `args` beside the usual flags), closed when the test ends. */
export async function launchChromium(t: Tap, dir: string, args: readonly string[] = []): Promise<BrowserContext> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install it with \`apt-get update && apt-get install -y chromium\``);
  const context = await chromium.launchPersistentContext(path.join(dir, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_FLAGS, ...args],
    viewport: { width: 1280, height: 860 },
  });
  t.teardown(() => context.close());
  return context;
}

/** A new tab; page errors (uncaught exceptions in the page) are collected for the test to check. */
export async function openPage(t: Tap, context: BrowserContext): Promise<Page & { errors: string[] }> {
  const page = Object.assign(await context.newPage(), { errors: [] as string[] });
  page.on('pageerror', (err) => page.errors.push(err.message));
  page.setDefaultTimeout(10_000);
  t.teardown(() => page.close());
  return page;
}

/** Where the dashboard tests keep their screenshots: DASHBOARD_SHOTS, or a fixed folder under the OS temp dir. */
export const SHOTS_DIR = process.env['DASHBOARD_SHOTS'] ?? path.join(os.tmpdir(), 'jobhost-dashboard-shots');

/**
 * Screenshots are taken in the test's temp dir and copied to SHOTS_DIR, which outlives the test
 * (each run overwrites the previous one's), so people can look at them after the suite.
 */
export function screenshots(dir: string): (page: Page, name: string, options?: { fullPage?: boolean }) => Promise<string> {
  const shots = path.join(dir, 'screenshots');
  mkdirSync(shots, { recursive: true });
  mkdirSync(SHOTS_DIR, { recursive: true });
  return async (page, name, options = {}) => {
    const file = path.join(shots, `${name}.png`);
    await page.screenshot({ path: file, fullPage: options.fullPage ?? false });
    const kept = path.join(SHOTS_DIR, `${name}.png`);
    cpSync(file, kept);
    return kept;
  };
}

const core = pathToFileURL(path.resolve(import.meta.dirname, '../../core/index.ts')).href;

/** Source of a plugin file in a test's plugins directory (imports resolve like a project's). */
export const pluginSource = (body: string, imports = ''): string =>
  `import { definePlugin } from '${core}';\nimport { z } from 'zod';\n${imports}\nexport default definePlugin(${body});\n`;

export interface DashboardHost {
  host: Host;
  url: string;
  dir: string;
  pluginsDir: string;
}

/**
 * A real host on a temp dir: a plugins directory with `files`, hot reload on, the disk store, the
 * real clock, and the HTTP server with the dashboard on 127.0.0.1, port 0. Stopped when the test ends.
 */
export async function startDashboardHost(
  t: Tap,
  files: Record<string, string>,
  options: {
    token?: string;
    tokens?: Array<{ name: string; token: string; role: Role; jobs?: string[] }>;
    allowedOrigins?: string[];
    allowedHosts?: string[];
  } = {},
): Promise<DashboardHost> {
  const dir = tempDir(t, 'jobhost-dash-');
  const pluginsDir = path.join(dir, 'plugins');
  mkdirSync(pluginsDir);
  writeFileSync(path.join(pluginsDir, 'package.json'), '{ "type": "module" }');
  for (const [name, body] of Object.entries(files)) writeFileSync(path.join(pluginsDir, name), body);
  const host = createHost({
    cwd: dir,
    logger: silentLogger(),
    config: {
      store: { dir: 'data' },
      plugins: { dir: 'plugins' },
      server: {
        token: options.token ?? null,
        ...(options.tokens && { tokens: options.tokens }),
        ...(options.allowedOrigins && { allowedOrigins: options.allowedOrigins }),
        ...(options.allowedHosts && { allowedHosts: options.allowedHosts }),
      },
    },
  });
  usePluginDirectory(host, { dir: pluginsDir, watch: true, importTimeoutMs: 10_000, debounceMs: 30 });
  const server = useServer(host, { host: '127.0.0.1', port: 0, plugins: [dashboard] });
  await host.start();
  t.teardown(() => host.stop({ graceMs: 0 }));
  return { host, url: server.url!, dir, pluginsDir };
}
