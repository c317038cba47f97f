// Message content to DOM nodes: a small, safe subset of Discord's markdown (code
// blocks, inline code, bold, italic, links) and mentions. Text only ever becomes
// text nodes; nothing is parsed as HTML.

const linkRe = /https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"]/y;
const mentionRe = /<(@!?|@&|#)(\d{1,20})>/y;

/**
 * @param {string} text
 * @param {{user: (id) => string, role: (id) => string, channel: (id) => string, me?: string}} names
 */
export function renderContent(text, names) {
  const frag = document.createDocumentFragment();
  // Code blocks first: nothing inside them is formatted.
  const parts = text.split(/```(?:[a-z0-9+-]*\n)?([\s\S]*?)```/i);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const pre = document.createElement('pre');
      const code = document.createElement('code');
      code.textContent = part.replace(/\n$/, '');
      pre.append(code);
      frag.append(pre);
    } else if (part) {
      inline(part, frag, names);
    }
  });
  return frag;
}

function inline(text, parent, names) {
  let buf = '';
  const flush = () => {
    if (buf) parent.append(document.createTextNode(buf));
    buf = '';
  };
  for (let i = 0; i < text.length;) {
    const c = text[i];
    if (c === '`') {
      const end = text.indexOf('`', i + 1);
      if (end > i + 1) {
        flush();
        const code = document.createElement('code');
        code.textContent = text.slice(i + 1, end);
        parent.append(code);
        i = end + 1;
        continue;
      }
    }
    if (c === '*' && text[i + 1] === '*') {
      const end = text.indexOf('**', i + 2);
      if (end > i + 2) {
        flush();
        const b = document.createElement('strong');
        inline(text.slice(i + 2, end), b, names);
        parent.append(b);
        i = end + 2;
        continue;
      }
    }
    if ((c === '*' || c === '_') && text[i + 1] !== c && text[i + 1] !== ' ') {
      const end = text.indexOf(c, i + 1);
      if (end > i + 1 && text[end - 1] !== ' ') {
        flush();
        const em = document.createElement('em');
        inline(text.slice(i + 1, end), em, names);
        parent.append(em);
        i = end + 1;
        continue;
      }
    }
    if (c === 'h') {
      linkRe.lastIndex = i;
      const m = linkRe.exec(text);
      if (m) {
        flush();
        const a = document.createElement('a');
        a.href = m[0];
        a.textContent = m[0];
        a.target = '_blank';
        a.rel = 'noopener noreferrer nofollow';
        parent.append(a);
        i += m[0].length;
        continue;
      }
    }
    if (c === '<') {
      mentionRe.lastIndex = i;
      const m = mentionRe.exec(text);
      if (m) {
        flush();
        const span = document.createElement('span');
        span.className = 'mention';
        if (m[1] === '#') span.textContent = `#${names.channel(m[2])}`;
        else if (m[1] === '@&') span.textContent = `@${names.role(m[2])}`;
        else span.textContent = `@${names.user(m[2])}`;
        parent.append(span);
        i += m[0].length;
        continue;
      }
    }
    if (c === '@' && (text.startsWith('@everyone', i) || text.startsWith('@here', i))) {
      flush();
      const word = text.startsWith('@everyone', i) ? '@everyone' : '@here';
      const span = document.createElement('span');
      span.className = 'mention';
      span.textContent = word;
      parent.append(span);
      i += word.length;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
}

/** Whether text mentions the user (by id), or everyone. */
export function mentions(text, userId) {
  return text.includes(`<@${userId}>`) || text.includes(`<@!${userId}>`) || /@(everyone|here)\b/.test(text);
}

const palette = ['#5865f2', '#3ba55c', '#faa61a', '#ed4245', '#eb459e', '#00a8fc', '#9b59b6', '#1abc9c', '#e67e22', '#607d8b'];

/** An avatar element: the user's initial on a colour picked from the id. */
export function avatar(user, cls = 'avatar') {
  const el = document.createElement('span');
  el.className = cls;
  el.setAttribute('aria-hidden', 'true');
  const name = (user && (user.global_name || user.username)) || '?';
  el.textContent = [...name][0].toUpperCase();
  let h = 0;
  const id = (user && user.id) || '0';
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) | 0;
  el.style.background = palette[Math.abs(h) % palette.length];
  return el;
}

export function guildInitials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  if (!words.length) return '?';
  return words.slice(0, 3).map((w) => [...w][0]).join('').toUpperCase();
}
