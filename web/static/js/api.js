// The REST client: Discord's routes under /api/v10 on this origin, the token in
// the Authorization header, Discord's error bodies turned into ApiError, and 429s
// waited out as the Retry-After says. Uploads go by XMLHttpRequest, whose
// progress events fetch does not have.

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.code = body && typeof body.code === 'number' ? body.code : null;
    this.body = body;
  }

  /** True when the server does not have the route at all (an older server). */
  get unknownRoute() {
    return (this.status === 404 || this.status === 405) && (this.code === 0 || this.code === null);
  }
}

function describe(status, body) {
  if (!body || typeof body !== 'object') return `Request failed (${status})`;
  // Discord's form errors: {errors: {field: {_errors: [{message}]}}}.
  const details = [];
  const walk = (node, path) => {
    if (!node || typeof node !== 'object') return;
    if (Array.isArray(node._errors)) {
      for (const e of node._errors) details.push(path ? `${path}: ${e.message}` : e.message);
    }
    for (const [k, v] of Object.entries(node)) if (k !== '_errors') walk(v, path ? `${path}.${k}` : k);
  };
  walk(body.errors, '');
  const msg = body.message || `Request failed (${status})`;
  return details.length ? `${msg}: ${details.join('; ')}` : msg;
}

const maxRetries = 3;

export class Api {
  constructor(base = '/api/v10') {
    this.base = base;
    this.token = null;
    /** Called once a request is answered 401: the token is no longer good. */
    this.onUnauthorized = null;
  }

  async request(method, path, body, { auth = true, signal, keepalive = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      const headers = {};
      if (auth && this.token) headers.Authorization = this.token;
      let payload;
      if (body instanceof FormData) {
        payload = body; // the browser writes the multipart boundary
      } else if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        payload = JSON.stringify(body);
      }
      const res = await fetch(this.base + path, { method, headers, body: payload, signal, keepalive });
      let data = null;
      const text = await res.text();
      if (text) {
        try {
          data = JSON.parse(text);
        } catch {
          data = null;
        }
      }
      if (res.status === 429 && attempt < maxRetries) {
        const after = Number((data && data.retry_after) ?? res.headers.get('Retry-After') ?? 1);
        await sleep(Math.min(Math.max(after, 0.05), 10) * 1000);
        continue;
      }
      if (res.status === 401 && auth && this.onUnauthorized) this.onUnauthorized();
      if (!res.ok) throw new ApiError(res.status, data);
      return data;
    }
  }

  /**
   * POSTs a multipart body with XMLHttpRequest, whose upload reports progress
   * (fetch cannot): onProgress(loaded, total) as the bytes go out. signal
   * aborts it (an AbortError). Errors and 429s as request().
   */
  async upload(path, form, { onProgress, signal } = {}) {
    for (let attempt = 0; ; attempt++) {
      const { status, data, retryAfter } = await this.send(path, form, onProgress, signal);
      if (status === 429 && attempt < maxRetries) {
        await sleep(Math.min(Math.max(Number((data && data.retry_after) ?? retryAfter ?? 1), 0.05), 10) * 1000);
        continue;
      }
      if (status === 401 && this.onUnauthorized) this.onUnauthorized();
      if (status < 200 || status >= 300) throw new ApiError(status, data);
      return data;
    }
  }

  send(path, form, onProgress, signal) {
    return new Promise((resolve, reject) => {
      if (signal && signal.aborted) {
        reject(new DOMException('The upload was cancelled.', 'AbortError'));
        return;
      }
      const xhr = new XMLHttpRequest();
      xhr.open('POST', this.base + path);
      if (this.token) xhr.setRequestHeader('Authorization', this.token);
      if (onProgress) xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0));
      const onAbort = () => xhr.abort();
      signal?.addEventListener('abort', onAbort, { once: true });
      const done = () => signal?.removeEventListener('abort', onAbort);
      xhr.addEventListener('load', () => {
        done();
        let data = null;
        try {
          data = xhr.responseText ? JSON.parse(xhr.responseText) : null;
        } catch {
          data = null;
        }
        resolve({ status: xhr.status, data, retryAfter: xhr.getResponseHeader('Retry-After') });
      });
      xhr.addEventListener('error', () => { done(); reject(new TypeError('The upload failed: the server could not be reached.')); });
      xhr.addEventListener('abort', () => { done(); reject(new DOMException('The upload was cancelled.', 'AbortError')); });
      xhr.send(form);
    });
  }

  get(path, opts) { return this.request('GET', path, undefined, opts); }
  post(path, body, opts) { return this.request('POST', path, body ?? {}, opts); }
  patch(path, body, opts) { return this.request('PATCH', path, body, opts); }
  put(path, body, opts) { return this.request('PUT', path, body, opts); }
  delete(path, opts) { return this.request('DELETE', path, undefined, opts); }
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
