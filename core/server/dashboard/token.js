// @ts-check
// The token prompt: shown on the first 401 (however many requests were refused at once), it
// resolves once a token works; the token is then kept for the tab by api.js. It then says whose
// token it took and what its role may do, until the user goes on.
import { describeWho, loadWhoami } from './access.js';
import { ApiError, getToken, onUnauthorized, setToken } from './api.js';

/** @import { WhoAmI } from '../../contract/access.js' */

/**
 * Wires the `<dialog id="token-dialog">`; `onUnlocked` runs after a token has been accepted.
 * @param {HTMLDialogElement} dialog
 * @param {{ onUnlocked: () => unknown }} options
 */
export function createTokenPrompt(dialog, { onUnlocked }) {
  const form = /** @type {HTMLFormElement} */ (dialog.querySelector('form'));
  const input = /** @type {HTMLInputElement} */ (dialog.querySelector('input'));
  const error = /** @type {HTMLElement} */ (dialog.querySelector('#token-error'));
  const fields = /** @type {HTMLElement} */ (dialog.querySelector('[data-token-fields]'));
  const who = /** @type {HTMLElement} */ (dialog.querySelector('[data-token-who]'));
  const submit = /** @type {HTMLButtonElement} */ (dialog.querySelector('button[type=submit]'));
  /** @type {Promise<void> | null} */
  let waiting = null;

  /** @param {string} message */
  function ask(message) {
    waiting ??= new Promise((resolve) => {
      error.textContent = message;
      fields.hidden = false;
      who.hidden = true;
      who.textContent = '';
      submit.textContent = 'Unlock';
      form.onsubmit = async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (!token) {
          error.textContent = 'Enter the token.';
          return;
        }
        setToken(token);
        /** @type {WhoAmI} */
        let me;
        try {
          // Any viewer may read it: it checks the token and says whose it is.
          me = await loadWhoami();
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
        error.textContent = '';
        // The page loads behind the dialog meanwhile; the dialog says what the token may do.
        fields.hidden = true;
        who.textContent = describeWho(me);
        who.dataset.role = me.role;
        who.hidden = false;
        submit.textContent = 'Continue';
        form.onsubmit = (e) => {
          e.preventDefault();
          dialog.close();
        };
        dialog.oncancel = null;
        submit.focus();
        waiting = null;
        resolve();
      };
      // Without a token the page can show nothing: Escape does not dismiss the prompt.
      dialog.oncancel = (e) => e.preventDefault();
      if (!dialog.open) dialog.showModal();
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
