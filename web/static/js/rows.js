// The message list's rows: grouping by author and day, what is drawn for a
// message (author, time, content, reply, reactions, actions), the arrow-key
// focus between messages and the reaction picker. Methods of App (see mixin).

import { ApiError } from './api.js';
import { renderContent, mentions, avatar } from './markup.js';
import { idTime } from './snowflake.js';
import { toast } from './modal.js';
import { el, svg, icons, Perm } from './dom.js';

const groupMs = 7 * 60 * 1000;
const quickReactions = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

function msgTime(m) {
  const t = m.timestamp ? Date.parse(m.timestamp) : NaN;
  return Number.isNaN(t) ? idTime(m.id) : t;
}

function sameDay(a, b) {
  const x = new Date(a);
  const y = new Date(b);
  return x.getFullYear() === y.getFullYear() && x.getMonth() === y.getMonth() && x.getDate() === y.getDate();
}

export class Rows {
  // ---------------------------------------------------------------- message rows

  grouping(m, i, items) {
    if (m.kind === 'start' || m.kind === 'loading') return { head: true, day: false };
    const prev = items[i - 1];
    const t = msgTime(m);
    if (!prev || prev.kind === 'start' || prev.kind === 'loading') return { head: true, day: true };
    const pt = msgTime(prev);
    const day = !sameDay(pt, t);
    const head = day || !!m.message_reference || prev.author.id !== m.author.id || t - pt > groupMs;
    return { head, day };
  }

  signature(m, i, items) {
    if (m.kind === 'start' || m.kind === 'loading') return m.kind;
    const { head, day } = this.grouping(m, i, items);
    return [m.content, m.edited_timestamp || '', head ? 1 : 0, day ? 1 : 0, m.reactions ? JSON.stringify(m.reactions) : '',
      this.editing && this.editing.id === m.id ? 'e' : '', this.store.caps.reactions ? 'r' : '', this.store.caps.replies ? 'y' : '',
      m.kind || '', m.failed ? 'f' : '', m.referenced_message ? m.referenced_message.content : ''].join('\u0001');
  }

  renderRow(m, i, items) {
    if (m.kind === 'start') {
      const ch = this.store.channels.get(this.channelId);
      return el('div', { class: 'history-start', role: 'listitem' },
        el('h2', { text: `Welcome to #${ch ? ch.name : ''}` }),
        el('p', { text: 'This is the start of the channel.' }));
    }
    if (m.kind === 'loading') return el('div', { class: 'history-loading', role: 'listitem', text: 'Loading older messages…' });
    const { head, day } = this.grouping(m, i, items);
    const me = this.store.me;
    const mine = me && m.author.id === me.id;
    const name = this.store.displayName(m.author.id, m.guild_id || this.guildId);
    const t = msgTime(m);
    const row = el('div', {
      class: ['msg', head ? 'head' : '', m.kind === 'pending' ? 'pending' : '', m.failed ? 'failed' : '',
        this.editing && this.editing.id === m.id ? 'editing' : '', me && !mine && mentions(m.content || '', me.id) ? 'mentioned' : ''].filter(Boolean).join(' '),
      role: 'listitem', dataset: { id: m.id || '', author: m.author.id },
      tabindex: m.id ? '-1' : null, // reachable with the arrow keys (see onListKey)
    });
    const wrap = el('div', {});
    if (day) wrap.append(el('div', { class: 'day', role: 'separator', text: dayFmt.format(t) }));
    wrap.append(row);
    if (m.message_reference) {
      const ref = m.referenced_message;
      const line = el('div', { class: 'reply-to' });
      if (ref) line.append(el('b', { text: this.store.displayName(ref.author.id, ref.guild_id || this.guildId) }), document.createTextNode(` ${ref.content || ''}`));
      else line.append(document.createTextNode('Original message was deleted'));
      row.append(line);
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
    for (const a of m.attachments || []) {
      if (!/^(https?:\/\/|\/)/.test(a.url || '')) continue; // never a javascript: or data: link
      const link = el('a', { class: 'attachment', href: a.url, target: '_blank', rel: 'noopener noreferrer' });
      if ((a.content_type || '').startsWith('image/')) link.append(el('img', { src: a.url, alt: a.filename || 'image', loading: 'lazy' }));
      else link.textContent = `📎 ${a.filename}`;
      row.append(link);
    }
    if (m.reactions && m.reactions.length && this.store.caps.reactions) {
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
    if (this.store.caps.reactions) add('Add reaction', icons.smile, (e) => this.openPicker(m, e.currentTarget));
    if (this.store.caps.replies) add('Reply', icons.reply, () => this.startReply(m));
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
    picker.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.stopPropagation(); this.closePicker(); anchor.focus(); } });
    row.append(picker);
    this.pickerFor = picker;
    picker.querySelector('button').focus();
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
      if (ex instanceof ApiError && ex.unknownRoute) {
        this.store.caps.reactions = false;
        toast('This server does not support reactions.');
        this.queue('messages');
      } else toast(`Could not react: ${ex.message}`, { error: true });
    }
  }
}
