import type { Socket } from 'node:net';
import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  LogController,
  type RawServerDefault,
} from 'fastify';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { parseConfig } from '../contract/config.js';
import { HostError } from '../contract/errors.js';
import type { Logger } from '../contract/logger.js';
import { packageJson } from '../contract/package-root.js';
import type { Host } from '../engine/host.js';
import { Access } from './access.js';
import { registerAccessRoutes } from './access-routes.js';
import { assertSafeBind, bearerToken, redactedUrl } from './auth.js';
import { type EventLoopOptions, watchEventLoop } from './event-loop.js';
import { validatorCompiler } from './fast-validate.js';
import { errorBody, toHttpError } from './http-errors.js';
import { errors, noBody, noQuery } from './http-schemas.js';
import { registerInsightRoutes } from './insight-routes.js';
import { createMetrics, type Metrics } from './metrics.js';
import { registerNotifyRoutes } from './notify-routes.js';
import { lazyOpenApi } from './openapi.js';
import { jsonPostsOnly, originGuard, requestGuard } from './origin.js';
import { registerPauseRoutes } from './pause-routes.js';
import { describeRole, routeAccess } from './route-roles.js';
import { type JobhostApp, registerRoutes } from './routes.js';
import { type EventStream, registerEventStream } from './ws.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Serve this route without the token. Only for what holds no data of the host: the dashboard's
     * page shell, which has to load before it can ask for the token.
     */
    public?: boolean;
  }
}

/**
 * An extra fastify plugin (e.g. the dashboard at `GET /`), registered after the API with `{ host }`.
 * Its routes need the token like the API's, unless a route sets `config: { public: true }`.
 */
export type ServerPlugin = FastifyPluginAsync<{ host: Host }, RawServerDefault, ZodTypeProvider>;

export interface ServerOptions {
  /** Address to bind (default `server.host` from the config: 127.0.0.1). */
  host?: string | undefined;
  /** Port (default `server.port`; 0 picks a free one). */
  port?: number | undefined;
  /** The admin token, or `sha256:<hex>` of it (default `server.token`; `server.tokens` add named ones): with any, every route but `/health` needs `Authorization: Bearer <token>`. */
  token?: string | null | undefined;
  /** Largest request body in bytes; larger ones get 413 (default `server.bodyLimit`, 1 MiB). */
  bodyLimit?: number | undefined;
  /** Web page origins admitted besides the host's own, e.g. a reverse proxy's (default `server.allowedOrigins`). */
  allowedOrigins?: readonly string[] | undefined;
  /** Host names served on a loopback bind besides loopback ones (default `server.allowedHosts`). */
  allowedHosts?: readonly string[] | undefined;
  /** Default: the host's logger. */
  logger?: Logger | undefined;
  /** Log every request (default false: errors only). */
  requestLogging?: boolean | undefined;
  /** WebSocket slow-reader bound and grace, see `EventStreamOptions`. */
  ws?: { maxBuffered?: number | undefined; cutoffGraceMs?: number | undefined } | undefined;
  /** Extra routes, e.g. the dashboard. */
  plugins?: readonly ServerPlugin[] | undefined;
  /** How the main thread's event loop is watched for `/ready` and `/metrics` (default windows of 1 s, 3 in a row). */
  eventLoop?: EventLoopOptions | undefined;
}

export interface Server {
  readonly app: JobhostApp;
  readonly metrics: Metrics;
  /** Who may do what (`route-roles.ts`), and the audit of changes. */
  readonly access: Access;
  /** The base URL once listening (`http://127.0.0.1:3000`), else null. */
  readonly url: string | null;
  listen(): Promise<{ url: string }>;
  /** Closes WebSockets (1001), then the server; idempotent. */
  close(): Promise<void>;
}

const version = packageJson().version;

/** Routes whose query is not checked (see the API scope's onRoute hook). */
const ANY_QUERY = new Set(['/health', '/ready', '/metrics', '/events/:type']);

/** `/jobs/:name/run` → a regex for the concrete path, to tell 405 from 404. */
function pathPattern(url: string): RegExp {
  const escaped = url.split('/').map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${escaped.join('/')}$`);
}

/** A raw 400 for requests Node's HTTP parser rejects before fastify sees them. */
function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(errorBody('BAD_REQUEST', `malformed HTTP request (${err.code ?? 'parse error'})`));
  socket.end(
    `HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** A request as fastify's request lines show it (its default serializer's fields), the URL's token redacted. */
function requestForLog(request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactedUrl(request.url),
    version: request.headers['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

/** The keys of `from` named in `keys`. */
function pick<T extends object>(from: T, keys: readonly string[]): Partial<T> {
  return Object.fromEntries(Object.entries(from).filter(([k]) => keys.includes(k))) as Partial<T>;
}

function parsesAsJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const SERVER_OPTION_KEYS: ReadonlySet<string> = new Set([
  'host',
  'port',
  'token',
  'bodyLimit',
  'allowedOrigins',
  'allowedHosts',
  'logger',
  'requestLogging',
  'ws',
  'plugins',
  'eventLoop',
]);

/** What a client is told of a URL the router refused: its path parameters are not valid (the URL itself is not repeated: it may be long). */
function badPath(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  if (code !== 'FST_ERR_BAD_URL' && code !== 'FST_ERR_MAX_PARAM_LENGTH') return err;
  const message = code === 'FST_ERR_BAD_URL' ? 'a path segment is not valid: a % not followed by two hex digits' : 'a path segment is over 200 characters';
  return new HostError('INVALID_BODY', `params: ${message}`, { issues: [{ path: 'params', message }] });
}

/**
 * The HTTP API and WebSocket stream of SPEC §6–7 for a host. Settings default to the host's
 * validated `server` config. Refuses (INSECURE_BIND) a non-loopback address without a token.
 */
export function createServer(host: Host, options: ServerOptions = {}): Server {
  // A misspelt option (`prot`) was ignored silently: the server listened where the config said.
  for (const key of Object.keys(options ?? {})) {
    if (!SERVER_OPTION_KEYS.has(key))
      throw new HostError('CONFIG_INVALID', `${key}: unknown option (createServer takes ${[...SERVER_OPTION_KEYS].join(', ')})`, { path: key });
  }
  const settings = host.config.server;
  // An embedder's settings pass the config file's schema too: the same errors (CONFIG_INVALID
  // naming `server.<key>`), the same canonical forms; the config's own stand for the rest.
  const keys = ['host', 'port', 'token', 'bodyLimit', 'allowedOrigins', 'allowedHosts'] as const;
  const given = Object.fromEntries(keys.flatMap((k) => (options[k] === undefined ? [] : [[k, options[k]]])));
  // A token is checked against the config's named ones too (the same value twice is refused there).
  const checked = given['token'] !== undefined ? { ...given, tokens: settings.tokens } : given;
  const own = Object.keys(given).length === 0 ? settings : { ...settings, ...pick(parseConfig({ server: checked }).server, Object.keys(given)) };
  const { host: bindHost, port, token } = own;
  assertSafeBind(bindHost, token || settings.tokens.length > 0 ? 'set' : null);
  const logger = options.logger ?? host.logger;
  const guard = requestGuard({ bindHost, allowedOrigins: own.allowedOrigins, allowedHosts: own.allowedHosts });

  // Responses are typed by their schemas at compile time; writing them needs no second check.
  const writeJson = () => (data: unknown) => JSON.stringify(data);
  const compilers = { compilersFactory: { buildValidator: (() => validatorCompiler) as never, buildSerializer: (() => writeJson) as never } };
  const app: JobhostApp = Fastify({
    // fastify's request lines (`requestLogging`) show the URL: a WebSocket's `?token=` redacted.
    loggerInstance: logger.child({}, { serializers: { req: requestForLog } }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: !options.requestLogging }),
    bodyLimit: own.bodyLimit,
    routerOptions: { maxParamLength: 200 },
    // zod validates and responses are written as JSON (below): without these factories fastify
    // would also load its default compilers (ajv, fast-json-stringify) that nothing here uses (issue 26).
    // (Their types are ajv's, what fastify expects of its defaults; fastify calls each factory once and uses the compiler it returns.)
    schemaController: compilers,
    clientErrorHandler: clientError,
    // A URL the router cannot take (a `%` not followed by two hex digits, a segment over 200
    // characters) skips the request hooks: the origin and token checks are made here, so the answer
    // is the 403 or 401 any path gets, and the path is never echoed back.
    frameworkErrors: (err: unknown, request: FastifyRequest, reply: FastifyReply) => {
      void reply.header('x-content-type-options', 'nosniff').header('cross-origin-resource-policy', 'same-origin');
      let refusal: unknown;
      try {
        guard({ host: request.headers.host, origin: request.headers.origin });
        refusal = access.unauthorized(request) ?? badPath(err);
      } catch (refused) {
        refusal = refused;
      }
      const { statusCode, body } = toHttpError(refusal);
      if (statusCode === 401) void reply.header('www-authenticate', 'Bearer');
      void reply.code(statusCode).send(body);
    },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(writeJson);
  // JSON in and out: a text/plain body is refused with 415 rather than handed to a route as a string.
  app.removeContentTypeParser('text/plain');
  // POSTs must say application/json even without a body (see the media-type hook below), so an
  // empty JSON body means "no body", not 400.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.length === 0) done(null, undefined);
    else
      parseJson(request, text, (err, body) => {
        // Valid JSON refused as prototype poisoning: fastify's message would say it is not JSON.
        if (err && /"(__proto__|constructor)"\s*:/.test(text) && parsesAsJson(text)) {
          done(
            new HostError('BAD_REQUEST', 'a JSON body may not hold a "__proto__" key, nor a "constructor" with a "prototype" (refused as prototype poisoning)'),
            undefined,
          );
        } else done(err, body);
      });
  });

  app.setErrorHandler((err, request, reply) => {
    const { statusCode, body, internal, headers } = toHttpError(err);
    if (internal) request.log.error({ err, method: request.method, url: redactedUrl(request.url) }, 'request failed');
    if (statusCode === 401) void reply.header('www-authenticate', 'Bearer');
    if (headers) void reply.headers(headers);
    return reply.code(statusCode).send(body);
  });

  const access = new Access({ host, bindHost, token: options.token, bearer: bearerToken, logger });
  const routes: Array<{ methods: string[]; pattern: RegExp }> = [];
  app.addHook('onRoute', (route) => {
    access.onRoute(route);
    routes.push({ methods: [route.method].flat(), pattern: pathPattern(route.url) });
  });
  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    const shown = path.length > 200 ? `${path.slice(0, 200)}…` : path;
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods))];
    if (allowed.length > 0) {
      void reply.header('allow', allowed.join(', '));
      throw new HostError('METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${shown}; use ${allowed.join(', ')}`);
    }
    throw new HostError('NOT_FOUND', `no route ${request.method} ${shown}`);
  });

  const loop = watchEventLoop(options.eventLoop);
  // A host alert too while the loop stays slow (the same rule as /ready's `degraded`).
  host.conditions.source(() => {
    const max = host.config.eventLoop.maxDelay;
    if (!loop.slow(max)) return null;
    // A block as long as the windows (one handler holding the thread) is told as the block it was.
    const block = loop.block();
    const message =
      block > max
        ? `the event loop was blocked for ${Math.round(block)} ms at once (the bound is ${max} ms)`
        : `the event loop's p99 delay stayed above ${max} ms (last window ${Math.round(loop.delay().p99Ms)} ms)`;
    return { id: 'event-loop-stalled', message };
  });
  const metrics = createMetrics(host, loop);
  let stream: EventStream | undefined;

  void app.register(websocket, {
    // Clients only listen; a small cap keeps what they can make the host buffer small.
    options: { maxPayload: 4096 },
    errorHandler: (err, socket) => {
      logger.debug({ err }, 'WebSocket client error');
      socket.terminate();
    },
  });
  // Registered after the WebSocket plugin (like the token check below), so a refused upgrade never
  // reaches the socket: the 403 goes out on the raw connection, which is then closed.
  void app.register(originGuard(guard));
  // Registered after the WebSocket plugin, so its onRequest hook marks upgrade requests first and a
  // refused upgrade still gets its socket closed after the 401 or 403.
  void app.register(
    fp(async (scope) => {
      scope.decorateRequest('principal', undefined);
      scope.decorateRequest('routeAccess', undefined);
      scope.decorateRequest('auditId', undefined);
      scope.decorateRequest('auditCarried', false);
      scope.decorateRequest('auditIp', undefined);
      // Callback hooks, not async ones: a request with nothing to wait for pays no promise and no
      // microtask hop per hook (a throw reaches fastify's error handling like a rejection).
      // A job outside an operator's `jobs` is 403 FORBIDDEN, audited `forbidden`, whatever the
      // body, as the role check refuses before it too: checked with the token when the path names
      // the job, before validation (the body parsed by then) when the body does.
      const scopeChecked = (request: FastifyRequest, body: boolean, done: (err?: Error) => void): void => {
        const scoped = access.checkScope(request, body);
        if (scoped === undefined) done();
        else scoped.then(() => done(), done);
      };
      scope.addHook('onRequest', (request, _reply, done) => {
        access.check(request);
        scopeChecked(request, false, done);
      });
      scope.addHook('preValidation', (request, _reply, done) => scopeChecked(request, true, done));
      scope.addHook('onSend', (request, reply, payload, done) => {
        const written = access.audit(request, reply, payload);
        if (written === undefined) done(null, payload);
        else written.then(() => done(null, payload), done);
      });
    }),
  );
  // After the token check: who is asking comes before what they sent.
  void app.register(jsonPostsOnly);
  const openapi = lazyOpenApi(
    app,
    {
      openapi: {
        openapi: '3.0.3',
        info: { title: 'jobhost', description: 'HTTP API of the jobhost background-job host (SPEC §6)', version },
        components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
        security: token || settings.tokens.length > 0 ? [{ bearer: [] }] : [],
      },
      transform: (input) => describeRole(jsonSchemaTransform(input), input.route.method, input.url),
    },
    compilers,
  );
  void app.register(async (scope: JobhostApp) => {
    // Every API route checks its whole request (SPEC §6): one that declares no body or query
    // string refuses unknown keys there too, rather than ignoring them. Except the query of what
    // other systems call with URLs of their own making: probes and scrapers (a cache-buster, a
    // Prometheus job's `params`) and app events (a webhook sender's tag).
    // Its answers are documented whole as well: what the server's own guards answer to any route
    // (a token's role or a foreign origin, 401 and 403; a query or body refused, 400; a body too
    // large or not JSON, 413 and 415).
    scope.addHook('onRoute', (route) => {
      const schema = route.schema ?? {};
      const methods = [route.method].flat();
      const posts = methods.includes('POST');
      const query = schema.querystring ?? (ANY_QUERY.has(route.url) ? undefined : noQuery);
      const guarded = methods.some((m) => {
        const access = routeAccess(m, route.url);
        return access !== undefined && access.role !== 'public';
      });
      const response = schema.response as Record<number, unknown> | undefined;
      // 403 on every route (the origin guard answers before any role), 400 wherever a query or a body is checked.
      const answers = response && {
        ...errors(403),
        ...(guarded ? errors(401) : {}),
        ...(query || posts ? errors(400) : {}),
        ...(posts ? errors(413, 415) : {}),
        ...response,
      };
      route.schema = {
        ...schema,
        ...(query && { querystring: query }),
        ...(posts ? { body: schema.body ?? noBody } : {}),
        ...(answers && { response: answers }),
      };
    });
    registerRoutes(scope, host, loop);
    registerInsightRoutes(scope, host);
    registerNotifyRoutes(scope, host);
    registerAccessRoutes(scope, host);
    registerPauseRoutes(scope, host);
    stream = registerEventStream(scope, host, { ...options.ws, observer: metrics, opened: (socket, request) => access.track(socket, request) });
    scope.get('/metrics', {
      schema: {
        summary: 'Prometheus metrics (text exposition format)',
        tags: ['host'],
        response: { 200: z.string().describe('Prometheus text format 0.0.4'), ...errors(401) },
      },
      // Served as text, and so documented (openapi.ts): not the JSON string the schema alone would say.
      config: { produces: 'text/plain' },
      handler: async (_request, reply) => reply.type(metrics.contentType).send(await metrics.text()),
    });
    scope.get('/openapi.json', {
      schema: { summary: 'This OpenAPI document', tags: ['host'], response: { 200: z.unknown().describe('OpenAPI 3.0 document'), ...errors(401) } },
      handler: () => openapi(),
    });
  });
  for (const plugin of options.plugins ?? []) void app.register(plugin, { host });

  let url: string | null = null;
  let closing: Promise<void> | undefined;
  return {
    app,
    metrics,
    access,
    get url() {
      return url;
    },
    async listen() {
      try {
        url = await app.listen({ host: bindHost, port });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw err;
        const why = code === 'EADDRINUSE' ? 'another process has that port' : code === 'EACCES' ? 'not allowed to use that port' : 'no such address here';
        throw new HostError('LISTEN_FAILED', `cannot listen on ${bindHost}:${port}: ${why} (${code}; set server.port or JOBHOST_PORT, 0 picks a free one)`, {
          host: bindHost,
          port,
          errno: code,
        });
      }
      return { url };
    },
    close() {
      closing ??= (async () => {
        await stream?.closeAll('the host is stopping');
        access.close();
        metrics.close();
        loop.stop();
        // A client that holds a request open (slowloris) must not hold up the host's exit.
        const force = setTimeout(() => app.server.closeAllConnections(), 5000);
        await app.close();
        clearTimeout(force);
        url = null;
      })();
      return closing;
    },
  };
}

/**
 * Creates the server and plugs it into the host's lifecycle: it listens once the engine has
 * started and closes after the engine has drained (triggers meanwhile get 503 SHUTTING_DOWN).
 */
export function useServer(host: Host, options: ServerOptions = {}): Server {
  // Checked before the server is made: one made for a host that will not start it would be left behind.
  if (host.state !== 'created')
    throw new HostError(
      'ALREADY_STARTED',
      `useServer(host) plugs the server into host.start(), and this host is ${host.state}: call it before the start, or createServer(host).listen() after it`,
      {
        state: host.state,
      },
    );
  const server = createServer(host, options);
  host.use({
    name: 'http',
    start: async () => {
      const { url } = await server.listen();
      server.access.warnUnmatched();
      host.advertise(url);
      host.logger.info({ url }, `jobhost API listening on ${url}`);
    },
    stop: () => server.close(),
  });
  return server;
}
