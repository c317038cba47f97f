// Modal dialogs and toasts. A modal traps focus, closes on Escape or a click on
// the backdrop, and gives focus back to where it was.

let open = null;

/**
 * Opens a modal. build(body, close) fills it; the promise resolves with what
 * close(value) was given (undefined when dismissed).
 */
export function modal(title, build, { label } = {}) {
  if (open) open.close();
  const root = document.getElementById('modal-root');
  const back = document.createElement('div');
  back.className = 'modal-backdrop';
  const box = document.createElement('div');
  box.className = 'modal';
  box.setAttribute('role', 'dialog');
  box.setAttribute('aria-modal', 'true');
  const h = document.createElement('h2');
  h.id = `modal-title-${Date.now()}`;
  h.textContent = title;
  box.setAttribute('aria-labelledby', h.id);
  if (label) box.setAttribute('aria-label', label);
  box.append(h);
  back.append(box);
  const previous = document.activeElement;
  return new Promise((resolve) => {
    const close = (value) => {
      if (!back.isConnected) return;
      back.remove();
      document.removeEventListener('keydown', onKey, true);
      open = null;
      if (previous && previous.focus) previous.focus();
      resolve(value);
    };
    function onKey(e) {
      if (e.key === 'Escape') {
        e.stopPropagation();
        e.preventDefault();
        close(undefined);
      } else if (e.key === 'Tab') {
        const f = [...box.querySelectorAll('button, input, select, textarea, a[href]')].filter((x) => !x.disabled && x.offsetParent !== null);
        if (!f.length) return;
        const first = f[0];
        const last = f[f.length - 1];
        if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      }
    }
    back.addEventListener('mousedown', (e) => { if (e.target === back) close(undefined); });
    document.addEventListener('keydown', onKey, true);
    open = { close };
    build(box, close);
    root.append(back);
    const focus = box.querySelector('[autofocus], input, select, textarea, button.primary, button.danger, button');
    if (focus) focus.focus();
  });
}

/** A form modal with fields; resolves with the values, or undefined. submit(values) may throw to show an error. */
export function formModal(title, { intro, fields, submitLabel, submit, danger = false }) {
  return modal(title, (box, close) => {
    if (intro) {
      const p = document.createElement('p');
      if (intro instanceof Node) p.append(intro); else p.textContent = intro;
      box.append(p);
    }
    const form = document.createElement('form');
    form.noValidate = true;
    form.style.display = 'contents';
    const inputs = {};
    for (const f of fields || []) {
      const id = `f-${f.name}-${Math.random().toString(36).slice(2, 7)}`;
      const label = document.createElement('label');
      label.htmlFor = id;
      label.textContent = f.label;
      let input;
      if (f.options) {
        input = document.createElement('select');
        for (const [value, text] of f.options) {
          const o = document.createElement('option');
          o.value = value;
          o.textContent = text;
          input.append(o);
        }
      } else {
        input = document.createElement('input');
        input.type = f.type || 'text';
        if (f.maxLength) input.maxLength = f.maxLength;
        if (f.placeholder) input.placeholder = f.placeholder;
        input.autocomplete = 'off';
      }
      input.id = id;
      input.name = f.name;
      if (f.value != null) input.value = f.value;
      if (f.autofocus) input.autofocus = true;
      inputs[f.name] = input;
      form.append(label, input);
    }
    const err = document.createElement('p');
    err.className = 'form-error';
    err.setAttribute('role', 'alert');
    const buttons = document.createElement('div');
    buttons.className = 'buttons';
    const cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'secondary';
    cancel.textContent = 'Cancel';
    cancel.addEventListener('click', () => close(undefined));
    const ok = document.createElement('button');
    ok.type = 'submit';
    ok.className = danger ? 'danger' : 'primary';
    ok.textContent = submitLabel;
    buttons.append(cancel, ok);
    form.append(err, buttons);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const values = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v.value]));
      ok.disabled = true;
      err.textContent = '';
      try {
        const result = submit ? await submit(values) : values;
        close(result ?? values);
      } catch (ex) {
        err.textContent = ex.message || String(ex);
        ok.disabled = false;
      }
    });
    box.append(form);
  });
}

export function toast(text, { error = false, ms = 4000 } = {}) {
  const t = document.createElement('div');
  t.className = error ? 'toast error' : 'toast';
  t.textContent = text;
  document.getElementById('toasts').append(t);
  setTimeout(() => t.remove(), ms);
}

export function modalOpen() {
  return open !== null;
}
