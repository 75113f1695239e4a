import type { SwaggerOptions } from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyServerOptions, type RouteOptions } from 'fastify';

/**
 * `GET /openapi.json` without @fastify/swagger at start (issue 26: it loads yaml and a schema
 * resolver, ~90 modules, for a document only this route serves). The API's routes are recorded
 * as they are declared, as the plugin's own `onRoute` hook does; the first request builds the
 * document once, by handing those routes to @fastify/swagger in a server of its own that never
 * listens, with the same options: the same document, built the same way, on first use.
 */

type Compilers = NonNullable<FastifyServerOptions['schemaController']>;

/** Records the routes of `app` from here on; returns what builds (once) and serves the document. */
export function lazyOpenApi(app: FastifyInstance, options: SwaggerOptions, compilers: Compilers): () => Promise<unknown> {
  const routes: RouteOptions[] = [];
  // HEAD routes are left out, as @fastify/swagger leaves them out (no `exposeHeadRoutes` here).
  app.addHook('onRoute', (route) => {
    if (route.method !== 'HEAD') routes.push(route);
  });
  let document: Promise<unknown> | undefined;
  return () => {
    document ??= build(routes, options, compilers).catch((err: unknown) => {
      document = undefined; // a failed build is tried again on the next request
      throw err;
    });
    return document;
  };
}

async function build(routes: readonly RouteOptions[], options: SwaggerOptions, compilers: Compilers): Promise<unknown> {
  const { default: swagger } = await import('@fastify/swagger');
  const doc = Fastify({ logger: false, routerOptions: { maxParamLength: 200 }, schemaController: compilers, exposeHeadRoutes: false });
  try {
    await doc.register(swagger, options);
    await doc.register(async (scope) => {
      for (const { method, url, schema, config, links } of routes) {
        scope.route({ method, url, schema, config, links, handler: async () => null } as RouteOptions);
      }
    });
    await doc.ready();
    return textAnswers(bodiesOptional(doc.swagger() as OpenApiDoc, routes), routes);
  } finally {
    await doc.close();
  }
}

type OpenApiDoc = {
  paths?: Record<
    string,
    Record<string, { requestBody?: { required?: boolean }; responses?: Record<string, { content?: Record<string, unknown> }> } | undefined>
  >;
};

/** A route whose 200 is not JSON (`config.produces`, e.g. `/metrics`): its answer is documented under that media type. */
function textAnswers(spec: OpenApiDoc, routes: readonly RouteOptions[]): OpenApiDoc {
  for (const { method, url, config } of routes) {
    const produces = (config as { produces?: unknown } | undefined)?.produces;
    if (typeof produces !== 'string') continue;
    for (const m of [method].flat()) {
      const ok = spec.paths?.[url.replace(/:(\w+)/g, '{$1}')]?.[m.toLowerCase()]?.responses?.['200'];
      const json = ok?.content?.['application/json'];
      if (ok?.content && json) ok.content = { [produces]: json };
    }
  }
  return spec;
}

/**
 * @fastify/swagger marks every request body required (fastify itself wants one where a body schema
 * is given); the API's bodies may be left out (no body, or an empty JSON body, is none): where the
 * route's schema takes `undefined`, the document says the body is optional, so generated clients
 * do not insist on one.
 */
function bodiesOptional(spec: OpenApiDoc, routes: readonly RouteOptions[]): OpenApiDoc {
  for (const { method, url, schema } of routes) {
    const body = schema?.body as { safeParse?: (v: unknown) => { success: boolean } } | undefined;
    if (typeof body?.safeParse !== 'function' || !body.safeParse(undefined).success) continue;
    const path = url.replace(/:(\w+)/g, '{$1}');
    for (const m of [method].flat()) {
      const op = spec.paths?.[path]?.[m.toLowerCase()];
      if (op?.requestBody) op.requestBody.required = false;
    }
  }
  return spec;
}
