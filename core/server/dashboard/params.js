// The Run dialog: a JSON editor for a job's params, pre-filled from its JSON Schema, that shows the
// server's answer (INVALID_PARAMS issues, a SKIPPED reason) next to the editor.
import { ApiError, post } from './api.js';
import { fill, h } from './dom.js';

/** A value to start from for a field without a default: the first example, else an empty value of its type. */
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
 */
export function skeleton(schema, defaults = {}) {
  const out = {};
  const required = new Set(Array.isArray(schema?.required) ? schema.required : []);
  for (const [key, field] of Object.entries(schema?.properties ?? {})) {
    if (field && typeof field === 'object' && 'default' in field) out[key] = field.default;
    else if (Array.isArray(field?.examples) && field.examples.length > 0) out[key] = field.examples[0];
    else if (required.has(key)) out[key] = placeholder(field);
  }
  return { ...out, ...defaults };
}

/** One line per field: name, type, required, constraints, description. */
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
 */
export function createRunDialog(dialog, { onQueued }) {
  const form = dialog.querySelector('form');
  const title = dialog.querySelector('[data-run-title]');
  const note = dialog.querySelector('[data-run-note]');
  const help = dialog.querySelector('[data-run-help]');
  const textarea = dialog.querySelector('textarea');
  const errors = dialog.querySelector('[data-run-errors]');
  const submit = dialog.querySelector('button[type=submit]');
  let job = null;

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
    if (e.submitter?.value === 'cancel') return dialog.close();
    clearErrors();
    let params;
    try {
      params = textarea.value.trim() === '' ? undefined : JSON.parse(textarea.value);
    } catch (err) {
      return showErrors(`The params are not valid JSON: ${err.message}`);
    }
    submit.disabled = true;
    try {
      const { runId } = await post(`/jobs/${encodeURIComponent(job.name)}/run`, params === undefined ? {} : { params });
      dialog.close();
      onQueued(runId, job);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'SKIPPED') showErrors(`Not run (${err.body.reason}): ${err.message}`);
      else if (err instanceof ApiError) showErrors(`${err.code ?? err.status}: ${err.message}`, err.body.issues ?? []);
      else showErrors(`Could not reach the host: ${err.message}`);
    } finally {
      submit.disabled = false;
    }
  });

  return {
    open(target) {
      job = target;
      clearErrors();
      title.textContent = `Run ${job.name}`;
      note.textContent = job.enabled ? '' : 'This job is disabled: the host will refuse the run until it is enabled.';
      note.hidden = job.enabled;
      const schema = job.paramsSchema;
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
