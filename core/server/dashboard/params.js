// @ts-check
// The Run dialog: a JSON editor for a job's params, pre-filled from its JSON Schema, that shows the
// server's answer (INVALID_PARAMS issues, a SKIPPED reason) next to the editor.
import { ApiError, post } from './api.js';
import { fill, h } from './dom.js';

/** @import { TriggerResult } from '../../contract/run.js' */
/** @import { JobView } from '../../contract/views.js' */

/**
 * The parts of a JSON Schema (a job's `paramsSchema`, as zod writes it) that the dialog reads.
 * The host sends any schema its plugins declare: each part is checked before it is used.
 * @typedef {{
 *   type?: string | string[],
 *   properties?: Record<string, JsonSchema>,
 *   required?: unknown,
 *   const?: unknown,
 *   default?: unknown,
 *   examples?: unknown,
 *   enum?: unknown[],
 *   anyOf?: JsonSchema[],
 *   oneOf?: JsonSchema[],
 *   minimum?: number,
 *   maximum?: number,
 *   minLength?: number,
 *   pattern?: string,
 *   format?: string,
 *   description?: string,
 * }} JsonSchema
 */

/**
 * A value to start from for a field without a default: the first example, else an empty value of its type.
 * @param {JsonSchema | undefined} schema
 * @returns {unknown}
 */
function placeholder(schema) {
  if (!schema || typeof schema !== 'object') return null;
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.examples) && schema.examples.length > 0) return schema.examples[0];
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  const alt = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(alt) && alt.length > 0) return placeholder(alt.find((s) => s.type !== 'null') ?? alt[0]);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'string':
      return '';
    case 'number':
    case 'integer':
      return typeof schema.minimum === 'number' && schema.minimum > Number.MIN_SAFE_INTEGER ? schema.minimum : 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    case 'object':
      return skeleton(schema, {});
    default:
      return null;
  }
}

/**
 * The params a form starts with: each field's default, or its first example, or (when required)
 * an empty value of its type; then the config's `jobs.<name>.params` on top, as the host merges them.
 * @param {JsonSchema | null | undefined} schema
 * @param {Record<string, unknown>} [defaults]
 */
export function skeleton(schema, defaults = {}) {
  /** @type {Record<string, unknown>} */
  const out = {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  for (const [key, field] of Object.entries(schema?.properties ?? {})) {
    if (field && typeof field === 'object' && 'default' in field) out[key] = field.default;
    else if (Array.isArray(field?.examples) && field.examples.length > 0) out[key] = field.examples[0];
    else if (required.has(key)) out[key] = placeholder(field);
  }
  return { ...out, ...defaults };
}

/**
 * One line per field: name, type, required, constraints, description.
 * @param {JsonSchema} schema
 */
function fieldHelp(schema) {
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  return Object.entries(schema?.properties ?? {}).map(([key, f]) => {
    const type = f.type ?? (f.enum ? f.enum.map((v) => JSON.stringify(v)).join(' | ') : f.anyOf ? 'one of several' : 'any');
    const limits = [
      // zod's int() bounds are the safe-integer limits: no news to anyone.
      f.minimum !== undefined && f.minimum > Number.MIN_SAFE_INTEGER ? `≥ ${f.minimum}` : '',
      f.maximum !== undefined && f.maximum < Number.MAX_SAFE_INTEGER ? `≤ ${f.maximum}` : '',
      f.minLength !== undefined ? `min length ${f.minLength}` : '',
      f.pattern ? `pattern ${f.pattern}` : '',
      f.format ? f.format : '',
      'default' in f ? `default ${JSON.stringify(f.default)}` : '',
    ]
      .filter(Boolean)
      .join(', ');
    return h(
      'li',
      {},
      h('code', {}, key),
      ` ${Array.isArray(type) ? type.join(' | ') : type}`,
      required.has(key) ? h('strong', {}, ' required') : ' optional',
      limits ? ` — ${limits}` : '',
      f.description ? ` — ${f.description}` : '',
    );
  });
}

/**
 * Wires the `<dialog id="run-dialog">`. `open(job)` shows it; `onQueued(runId)` is called after a 202.
 * @param {HTMLDialogElement} dialog
 * @param {{ onQueued: (runId: string, job: JobView) => void }} options
 */
export function createRunDialog(dialog, { onQueued }) {
  const form = /** @type {HTMLFormElement} */ (dialog.querySelector('form'));
  const title = /** @type {HTMLElement} */ (dialog.querySelector('[data-run-title]'));
  const note = /** @type {HTMLElement} */ (dialog.querySelector('[data-run-note]'));
  const help = /** @type {HTMLElement} */ (dialog.querySelector('[data-run-help]'));
  const textarea = /** @type {HTMLTextAreaElement} */ (dialog.querySelector('textarea'));
  const errors = /** @type {HTMLElement} */ (dialog.querySelector('[data-run-errors]'));
  const submit = /** @type {HTMLButtonElement} */ (dialog.querySelector('button[type=submit]'));
  /** @type {JobView} */
  let job;

  /**
   * @param {string} message
   * @param {ReadonlyArray<{ path: string, message: string }>} [issues]
   */
  const showErrors = (message, issues = []) => {
    textarea.setAttribute('aria-invalid', 'true');
    fill(
      errors,
      h('p', {}, message),
      issues.length
        ? h(
            'ul',
            {},
            issues.map((i) => h('li', {}, h('code', {}, i.path || '(params)'), `: ${i.message}`)),
          )
        : null,
    );
    errors.hidden = false;
  };
  const clearErrors = () => {
    textarea.removeAttribute('aria-invalid');
    errors.replaceChildren();
    errors.hidden = true;
  };

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (/** @type {HTMLButtonElement | null} */ (e.submitter)?.value === 'cancel') return dialog.close();
    clearErrors();
    let params;
    try {
      params = textarea.value.trim() === '' ? undefined : JSON.parse(textarea.value);
    } catch (err) {
      return showErrors(`The params are not valid JSON: ${/** @type {Error} */ (err).message}`);
    }
    submit.disabled = true;
    try {
      const { runId } = /** @type {TriggerResult} */ (await post(`/jobs/${encodeURIComponent(job.name)}/run`, params === undefined ? {} : { params }));
      dialog.close();
      onQueued(runId, job);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'SKIPPED') showErrors(`Not run (${err.body.reason}): ${err.message}`);
      else if (err instanceof ApiError) showErrors(`${err.code ?? err.status}: ${err.message}`, err.body.issues ?? []);
      else showErrors(`Could not reach the host: ${/** @type {Error} */ (err).message}`);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    /** @param {JobView} target */
    open(target) {
      job = target;
      clearErrors();
      title.textContent = `Run ${job.name}`;
      note.textContent = job.enabled ? '' : 'This job is disabled: the host will refuse the run until it is enabled.';
      note.hidden = job.enabled;
      const schema = /** @type {JsonSchema | null | undefined} */ (job.paramsSchema);
      fill(
        help,
        schema?.properties
          ? h('ul', {}, fieldHelp(schema))
          : h('p', {}, schema ? 'Params as the job expects them.' : 'This job declares no params schema: any JSON object.'),
      );
      textarea.value = JSON.stringify(skeleton(schema, job.paramDefaults), null, 2);
      textarea.rows = Math.min(14, Math.max(4, textarea.value.split('\n').length + 1));
      dialog.showModal();
      textarea.focus();
    },
  };
}
