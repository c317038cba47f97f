// The message list's rows: grouping by author and day, what is drawn for a
// message (author, time, content, reply, reactions, actions), the arrow-key
// focus between messages and the reaction picker. Methods of App (see mixin).

import { renderContent, mentions, avatar } from './markup.js';
import { idTime } from './snowflake.js';
import { toast } from './modal.js';
import { $, el, svg, icons, Perm } from './dom.js';

const groupMs = 7 * 60 * 1000;
const quickReactions = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function msgTime(m) {
  const t = m.timestamp ? Date.parse(m.timestamp) : NaN;
  return Number.isNaN(t) ? idTime(m.id) : t;
}

/** Rows of the list that are not messages: the channel's start, the loading rows, the "new messages" divider. */
const markerKinds = new Set(['start', 'loading', 'loading-newer', 'unread']);

function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

export class Rows {
  // ---------------------------------------------------------------- message rows

  grouping(m, i, items) {
    if (markerKinds.has(m.kind)) return { head: true, day: false };
    let prev = items[i - 1];
    // Below the divider a message starts a group, but the day is the one above it.
    const afterDivider = !!prev && prev.kind === 'unread';
    if (afterDivider) prev = items[i - 2];
    const t = msgTime(m);
    if (!prev || markerKinds.has(prev.kind)) return { head: true, day: true };
    const pt = msgTime(prev);
    const day = !sameDay(pt, t);
    const head = afterDivider || day || !!m.message_reference || prev.author.id !== m.author.id || t - pt > groupMs;
    return { head, day };
  }

  signature(m, i, items) {
    if (markerKinds.has(m.kind)) return m.kind;
    if (m.kind === 'pending' && m.uploading && m.uploading.length) return `${m.key}\u0001${m.failed || ''}`; // progress is drawn in place (see drawProgress)
    const { head, day } = this.grouping(m, i, items);
    return [m.content, m.edited_timestamp || '', head ? 1 : 0, day ? 1 : 0, m.reactions ? JSON.stringify(m.reactions) : '',
      this.editing && this.editing.id === m.id ? 'e' : '', this.highlight && this.highlight === m.id ? 'h' : '',
      m.kind || '', m.failed ? 'f' : '', m.referenced_message ? m.referenced_message.content : '', (m.attachments || []).length].join('\u0001');
  }

  renderRow(m, i, items) {
    if (m.kind === 'start') {
      const ch = this.store.channels.get(this.channelId);
      return el('div', { class: 'history-start', role: 'listitem' },
        el('h2', { text: `Welcome to #${ch ? ch.name : ''}` }),
        el('p', { text: 'This is the start of the channel.' }));
    }
    if (m.kind === 'loading') return el('div', { class: 'history-loading', role: 'listitem', text: 'Loading older messages…' });
    if (m.kind === 'loading-newer') return el('div', { class: 'history-loading', role: 'listitem', text: 'Loading newer messages…' });
    if (m.kind === 'unread') return el('div', { class: 'unread-divider', role: 'separator', 'aria-label': 'New messages' }, el('span', { text: 'New' }));
    const { head, day } = this.grouping(m, i, items);
    const me = this.store.me;
    const mine = me && m.author.id === me.id;
    const name = this.store.displayName(m.author.id, m.guild_id || this.guildId);
    const t = msgTime(m);
    const row = el('div', {
      class: ['msg', head ? 'head' : '', m.kind === 'pending' ? 'pending' : '', m.failed ? 'failed' : '',
        this.editing && this.editing.id === m.id ? 'editing' : '', me && !mine && mentions(m.content || '', me.id) ? 'mentioned' : '',
        this.highlight && this.highlight === m.id ? 'highlight' : ''].filter(Boolean).join(' '),
      role: 'listitem', dataset: { id: m.id || '', author: m.author.id },
      tabindex: m.id ? '-1' : null, // reachable with the arrow keys (see onListKey)
    });
    const wrap = el('div', {});
    if (day) wrap.append(el('div', { class: 'day', role: 'separator', text: dayFmt.format(t) }));
    wrap.append(row);
    if (m.message_reference) {
      // The quoted line above a reply: a button that shows the original.
      const ref = m.referenced_message;
      if (ref) {
        const who = this.store.displayName(ref.author.id, ref.guild_id || this.guildId);
        const text = ref.content || ((ref.attachments || []).length ? 'Click to see attachment' : '');
        row.append(el('button', {
          class: 'reply-to', type: 'button', dataset: { refId: ref.id },
          'aria-label': `Replying to ${who}: ${text}. Show the original message`,
          onclick: () => (ref.channel_id && ref.channel_id !== m.channel_id ? this.selectChannel(ref.channel_id) : this.jumpTo(ref.id)),
        }, el('b', { text: who }), el('span', { class: 'reply-text', text })));
      } else {
        row.append(el('div', { class: 'reply-to deleted', text: 'Original message was deleted' }));
      }
    }
    if (head) {
      row.append(avatar(m.author));
      row.append(el('div', { class: 'meta' },
        el('span', { class: 'author', text: name }),
        el('time', { datetime: new Date(t).toISOString(), title: dateTimeFmt.format(t), text: sameDay(t, Date.now()) ? `Today at ${timeFmt.format(t)}` : dateTimeFmt.format(t) })));
    } else {
      row.append(el('time', { class: 'gutter-time', datetime: new Date(t).toISOString(), title: dateTimeFmt.format(t), text: timeFmt.format(t) }));
    }
    const content = el('div', { class: 'content' });
    content.append(renderContent(m.content || '', {
      user: (id) => this.store.displayName(id, this.guildId),
      role: (id) => (this.store.guilds.get(this.guildId)?.roles || []).find((r) => r.id === id)?.name || 'role',
      channel: (id) => this.store.channels.get(id)?.name || 'channel',
    }));
    if (m.edited_timestamp) content.append(el('span', { class: 'edited', title: dateTimeFmt.format(Date.parse(m.edited_timestamp)), text: '(edited)' }));
    if (m.failed) content.append(el('span', { class: 'edited', text: ` — not sent: ${m.failed}` }));
    row.append(content);
    if (m.uploading && m.uploading.length && !m.failed) row.append(this.uploadProgress(m));
    for (const a of m.attachments || []) row.append(this.renderAttachment(a));
    if (m.reactions && m.reactions.length) {
      const rs = el('div', { class: 'reactions' });
      for (const r of m.reactions) {
        const label = r.emoji.id ? `:${r.emoji.name}:` : r.emoji.name;
        rs.append(el('button', {
          class: `reaction${r.me ? ' me' : ''}`, type: 'button', 'aria-pressed': r.me ? 'true' : 'false',
          'aria-label': `${label} ${r.count} reaction${r.count === 1 ? '' : 's'}${r.me ? ', including yours' : ''}`,
          onclick: () => this.toggleReaction(m, r.emoji.name, !r.me),
        }, label, el('span', { text: String(r.count) })));
      }
      row.append(rs);
    }
    if (m.kind !== 'pending') row.append(this.rowActions(m, mine));
    return wrap;
  }

  rowActions(m, mine) {
    const bar = el('div', { class: 'actions', role: 'toolbar', 'aria-label': 'Message actions' });
    const add = (label, icon, fn, cls) => bar.append(el('button', { type: 'button', class: cls, 'aria-label': label, title: label, onclick: fn }, svg(icon)));
    add('Add reaction', icons.smile, (e) => this.openPicker(m, e.currentTarget));
    add('Reply', icons.reply, () => this.startReply(m));
    if (mine) add('Edit message', icons.edit, () => this.startEdit(m));
    if (mine || this.canInGuild(this.guildId, Perm.MANAGE_MESSAGES)) add('Delete message', icons.trash, (e) => this.deleteMessage(m, e.shiftKey), 'delete');
    return bar;
  }

  openPicker(m, anchor) {
    this.closePicker();
    const row = anchor.closest('.msg');
    const picker = el('div', { class: 'emoji-picker', role: 'menu', 'aria-label': 'Pick a reaction' });
    for (const e of quickReactions) {
      picker.append(el('button', { type: 'button', role: 'menuitem', 'aria-label': `React with ${e}`, text: e, onclick: () => { this.closePicker(); this.toggleReaction(m, e, true); } }));
    }
    picker.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') {
        ev.stopPropagation();
        this.closePicker();
        anchor.focus();
        return;
      }
      // A menu: the arrow keys move between the emoji.
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[ev.key];
      if (!step) return;
      ev.preventDefault();
      ev.stopPropagation();
      const items = [...picker.querySelectorAll('button')];
      items[(items.indexOf(document.activeElement) + step + items.length) % items.length].focus({ preventScroll: true });
    });
    // Above the message, unless that is out of view.
    const room = row.getBoundingClientRect().top - $('messages').getBoundingClientRect().top;
    if (room < 64) picker.classList.add('below');
    row.append(picker);
    this.pickerFor = picker;
    picker.querySelector('button').focus({ preventScroll: true }); // scrolling it out of view closes it
  }

  // pickerInView reports whether the open picker's message is still drawn and
  // at least partly in the list's view.
  pickerInView() {
    const row = this.pickerFor?.closest('.msg');
    if (!row || !row.isConnected) return false;
    const r = row.getBoundingClientRect(), view = $('messages').getBoundingClientRect();
    return r.bottom > view.top && r.top < view.bottom;
  }

  closePicker() {
    if (this.pickerFor) this.pickerFor.remove();
    this.pickerFor = null;
  }

  async toggleReaction(m, emoji, add) {
    const path = `/channels/${m.channel_id}/messages/${m.id}/reactions/${encodeURIComponent(emoji)}/@me`;
    try {
      if (add) await this.api.put(path);
      else await this.api.delete(path);
    } catch (ex) {
      toast(`Could not react: ${ex.message}`, { error: true });
    }
  }

  // ---------------------------------------------------------------- attachments

  /**
   * An attachment in a row: an image (of the size it will have, so the list
   * knows the row's height before the image loads), or a link with the size.
   */
  renderAttachment(a) {
    const url = attachmentURL(a.url);
    if (!url) return el('div', { class: 'attachment file', text: a.filename || 'file' });
    const box = imageBox(a);
    if (box) {
      const img = el('img', { src: url, alt: a.filename || 'image', width: String(box.w), height: String(box.h), loading: 'lazy', decoding: 'async' });
      return el('a', { class: 'attachment image', href: url, target: '_blank', rel: 'noopener noreferrer', 'aria-label': `${a.filename}, image, ${formatSize(a.size)}` }, img);
    }
    return el('div', { class: 'attachment file' },
      svg(icons.file),
      el('a', { href: url, target: '_blank', rel: 'noopener noreferrer', download: a.filename || '', text: a.filename || 'file' }),
      el('span', { class: 'size', text: formatSize(a.size) }));
  }

  /** The height the attachments of m add to its row, for the list's estimate. */
  attachmentsHeight(m) {
    let h = 0;
    for (const a of m.attachments || []) h += (imageBox(a)?.h ?? 40) + 4;
    return h;
  }
}

const maxImageW = 400;
const maxImageH = 300;

/** The displayed size of an image attachment, or null when it is not one the browser should draw. */
function imageBox(a) {
  const type = a.content_type || '';
  // SVG can carry scripts and is never drawn; the server says so too.
  if (!type.startsWith('image/') || type.startsWith('image/svg') || !(a.width > 0) || !(a.height > 0)) return null;
  const scale = Math.min(1, maxImageW / a.width, maxImageH / a.height);
  return { w: Math.max(1, Math.round(a.width * scale)), h: Math.max(1, Math.round(a.height * scale)) };
}

/**
 * An attachment's URL on this page's origin: the api that serves this page
 * serves the files at Discord's CDN path, and the page's Content-Security-Policy
 * allows its own origin only. Anything not under /attachments/ is not drawn.
 */
export function attachmentURL(raw) {
  let u;
  try {
    u = new URL(raw, location.href);
  } catch {
    return null;
  }
  if (!/^https?:$/.test(u.protocol) || !u.pathname.startsWith('/attachments/')) return null;
  return location.origin + u.pathname + u.search;
}

export function formatSize(n) {
  if (!(n >= 0)) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}
