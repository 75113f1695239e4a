// @ts-check
// How the notifications view and the destinations table show what went wrong.
import { ApiError } from './api.js';
import { h } from './dom.js';

/** @import { DeliveryError } from '../../contract/notification.js' */

/**
 * What went wrong, for a line on the page.
 * @param {unknown} err
 */
export const describe = (err) =>
  err instanceof ApiError ? `${err.code ?? err.status}: ${err.message}` : `could not reach the host (${/** @type {Error} */ (err).message})`;

/** Characters of a receiver's answer shown. */
export const BODY_SHOWN = 300;

/**
 * A delivery's or a test's error: the code, the HTTP status when there was an answer, the message.
 * @param {DeliveryError} e
 */
export function errorText(e, withStatus = true) {
  return h(
    'span',
    { class: 'delivery-error' },
    h('code', {}, e.code),
    withStatus && e.status !== undefined && e.status !== null ? h('span', { class: 'http' }, ` HTTP ${e.status}`) : null,
    h('span', { class: 'msg' }, e.message),
  );
}
