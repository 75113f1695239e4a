// @ts-check
// The token prompt: shown on the first 401 (however many requests were refused at once), it
// resolves once a token works; the token is then kept for the tab by api.js.
import { ApiError, get, getToken, onUnauthorized, setToken } from './api.js';

/**
 * Wires the `<dialog id="token-dialog">`; `onUnlocked` runs after a token has been accepted.
 * @param {HTMLDialogElement} dialog
 * @param {{ onUnlocked: () => unknown }} options
 */
export function createTokenPrompt(dialog, { onUnlocked }) {
  const form = /** @type {HTMLFormElement} */ (dialog.querySelector('form'));
  const input = /** @type {HTMLInputElement} */ (dialog.querySelector('input'));
  const error = /** @type {HTMLElement} */ (dialog.querySelector('#token-error'));
  /** @type {Promise<void> | null} */
  let waiting = null;

  /** @param {string} message */
  function ask(message) {
    waiting ??= new Promise((resolve) => {
      error.textContent = message;
      form.onsubmit = async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (!token) {
          error.textContent = 'Enter the token.';
          return;
        }
        setToken(token);
        try {
          await get('/stats');
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) {
            setToken(null);
            error.textContent = 'That token is not valid.';
            input.select();
          } else {
            error.textContent = `Cannot reach the host: ${/** @type {Error} */ (err).message}`;
          }
          return;
        }
        input.value = '';
        dialog.close();
        waiting = null;
        resolve();
      };
      // Without a token the page can show nothing: Escape does not dismiss the prompt.
      dialog.oncancel = (e) => e.preventDefault();
      dialog.showModal();
      input.focus();
    });
    return waiting;
  }

  onUnauthorized(() => {
    if (waiting) return; // already asking
    const had = getToken();
    setToken(null);
    void ask(had ? 'The token was refused; enter it again.' : '').then(onUnlocked);
  });

  return {
    /** Resolves when the prompt is answered (at once when it is not showing). */
    get waiting() {
      return waiting;
    },
  };
}
