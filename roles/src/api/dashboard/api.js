// Calls to the node's API: POST with query arguments, Kubo's JSON errors, and the bearer
// token the user gives when the API answers 401 (kept in sessionStorage for this tab).

const TOKEN_KEY = 'ipfsbench.apiToken';

/** An API call that did not succeed: HTTP status (0: no answer) and the API's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let tokenWanted = null; // the promise of a token while the dialog is open

function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Forgets the token (the API refused it). */
export function forgetToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage unavailable: nothing kept
  }
}

/** Shows the token dialog once for every caller waiting; resolves when a token is given. */
function askToken(refused) {
  if (tokenWanted) return tokenWanted;
  const dialog = document.getElementById('token-dialog');
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  const error = document.getElementById('token-error');
  error.textContent = refused ? 'The API refused that token.' : '';
  tokenWanted = new Promise((resolve) => {
    const onSubmit = (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (!value) return;
      try {
        sessionStorage.setItem(TOKEN_KEY, value);
      } catch {
        // storage unavailable: the token lives as long as this page
        memoryToken = value;
      }
      form.removeEventListener('submit', onSubmit);
      input.value = '';
      dialog.close();
      tokenWanted = null;
      resolve();
    };
    form.addEventListener('submit', onSubmit);
    // Without a token nothing loads: Escape does not dismiss the dialog.
    dialog.oncancel = (event) => event.preventDefault();
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
  return tokenWanted;
}

let memoryToken = null;

/** `[['kind', 'noop'], ['param', 'a=1'], ...]` or an object → the query string. */
function query(args) {
  const pairs = Array.isArray(args) ? args : Object.entries(args || {});
  const search = new URLSearchParams();
  for (const [k, v] of pairs) {
    if (v !== undefined && v !== null) search.append(k, String(v));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

async function send(path, args) {
  const headers = {};
  const t = token() || memoryToken;
  if (t) headers.Authorization = `Bearer ${t}`;
  let response;
  try {
    response = await fetch(`/api/v0/${path}${query(args)}`, {
      method: 'POST',
      headers,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, `the node does not answer (${e.message})`);
  }
  return { response, hadToken: Boolean(t) };
}

/** The raw response of a call, after the token dialog if the API asks for one. */
export async function callRaw(path, args) {
  for (let round = 0; round < 5; round += 1) {
    const { response, hadToken } = await send(path, args);
    if (response.status !== 401) {
      if (!response.ok) {
        let message = `${response.status} ${response.statusText}`;
        try {
          const body = await response.json();
          if (body && body.Message) message = body.Message;
        } catch {
          // not JSON: keep the status line
        }
        throw new ApiError(response.status, message);
      }
      return response;
    }
    if (hadToken) {
      forgetToken();
      memoryToken = null;
    }
    await askToken(hadToken);
  }
  throw new ApiError(401, 'the API refused every token given');
}

/** A call answering one JSON value. */
export async function call(path, args) {
  const response = await callRaw(path, args);
  return response.json();
}

/** A call answering JSON lines (`cluster/pins/status`): at most `limit` values. */
export async function callLines(path, args, limit) {
  const response = await callRaw(path, args);
  const text = await response.text();
  const out = [];
  let more = false;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    if (out.length === limit) {
      more = true;
      break;
    }
    out.push(JSON.parse(line));
  }
  return { items: out, more };
}

/** One read-only SQL query: the rows as objects keyed by column name. */
export async function sql(text) {
  const answer = await call('query', { arg: text });
  const names = answer.Columns.map((c) => c.Name);
  const rows = answer.Rows.map((row) => {
    const o = {};
    names.forEach((n, i) => {
      o[n] = row[i];
    });
    return o;
  });
  return { rows, truncated: answer.Truncated };
}

/** A text literal for SQL. */
export function literal(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}
