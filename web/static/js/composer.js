// The composer: Enter sends, Shift+Enter is a new line, Up edits the last own
// message, Escape cancels an edit or a reply; sending shows the message at once
// (pending) until the server confirms it; typing indicators both ways. Methods of
// App (see mixin).

import { newNonce } from './snowflake.js';
import { formModal, toast } from './modal.js';
import { $, el } from './dom.js';

const typingEveryMs = 8000;

export class Composer {
  // ---------------------------------------------------------------- composer

  autosize() {
    const t = $('composer-input');
    t.style.height = 'auto';
    t.style.height = `${Math.min(t.scrollHeight, window.innerHeight * 0.4)}px`;
  }

  onComposerKey(e) {
    const input = $('composer-input');
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submitComposer();
    } else if (e.key === 'Escape') {
      if (this.editing || this.replyTo) {
        e.preventDefault();
        e.stopPropagation();
        this.cancelContext(true);
      }
    } else if (e.key === 'ArrowUp' && !input.value && !this.editing && !e.shiftKey && !e.altKey) {
      const m = this.lastOwnMessage();
      if (m) {
        e.preventDefault();
        this.startEdit(m);
      }
    }
  }

  lastOwnMessage() {
    const log = this.store.logs.get(this.channelId);
    const me = this.store.me;
    if (!log || !me) return null;
    for (let i = log.items.length - 1; i >= 0; i--) if (log.items[i].author.id === me.id) return log.items[i];
    return null;
  }

  startEdit(m) {
    this.cancelContext(false);
    this.draftBeforeEdit = $('composer-input').value;
    this.editing = m;
    const input = $('composer-input');
    input.value = m.content;
    this.showContext('Editing message', 'Enter to save');
    this.autosize();
    input.focus();
    input.setSelectionRange(input.value.length, input.value.length);
    this.list.scrollToKey(m.id, 'center');
    this.list.setItems(this.rows());
  }

  startReply(m) {
    this.cancelContext(false);
    this.replyTo = m;
    this.showContext(`Replying to ${this.store.displayName(m.author.id, m.guild_id || this.guildId)}`);
    $('composer-input').focus();
  }

  showContext(text, hint) {
    const t = $('composer-context-text');
    t.textContent = '';
    t.append(el('b', { text }), hint ? ` — ${hint}` : '');
    $('composer-context').hidden = false;
  }

  cancelContext(restoreFocus) {
    const wasEditing = this.editing;
    this.editing = null;
    this.replyTo = null;
    $('composer-context').hidden = true;
    if (wasEditing) {
      $('composer-input').value = this.draftBeforeEdit || '';
      this.draftBeforeEdit = '';
      this.autosize();
      if (this.list) this.list.setItems(this.rows());
    }
    if (restoreFocus) $('composer-input').focus();
  }

  async submitComposer() {
    const input = $('composer-input');
    const content = input.value.trim();
    const channelId = this.channelId;
    if (!channelId) return;
    if (this.editing) {
      const m = this.editing;
      this.cancelContext(true);
      if (!content) {
        this.deleteMessage(m, false);
        return;
      }
      if (content === m.content) return;
      try {
        const updated = await this.api.patch(`/channels/${m.channel_id}/messages/${m.id}`, { content });
        this.store.messageUpdate(updated);
      } catch (ex) {
        toast(`Could not edit: ${ex.message}`, { error: true });
      }
      return;
    }
    if (!content) return;
    if (content.length > 2000) {
      toast('Messages can be at most 2000 characters.', { error: true });
      return;
    }
    const replyTo = this.replyTo;
    this.cancelContext(false);
    input.value = '';
    this.drafts.delete(channelId);
    this.autosize();
    this.lastTypingSent = 0;
    const nonce = newNonce();
    const log = this.store.log(channelId);
    const pending = {
      kind: 'pending', key: `p:${nonce}`, id: null, nonce, channel_id: channelId, guild_id: this.guildId, content,
      author: this.store.me, timestamp: new Date().toISOString(),
    };
    log.pending.push(pending);
    this.list.scrollToBottom();
    this.queue('messages');
    const body = { content, nonce };
    if (replyTo) body.message_reference = { message_id: replyTo.id, channel_id: replyTo.channel_id, guild_id: replyTo.guild_id, fail_if_not_exists: false };
    try {
      const m = await this.api.post(`/channels/${channelId}/messages`, body);
      log.pending = log.pending.filter((p) => p !== pending);
      if (replyTo) {
        const supported = !!m.message_reference;
        if (!supported && this.store.caps.replies !== false) toast('This server does not support replies yet: your message was sent without the reply.');
        this.store.caps.replies = supported;
      }
      this.store.messageCreate(m); // deduplicated with the gateway's MESSAGE_CREATE by id
      this.list.scrollToBottom();
    } catch (ex) {
      pending.failed = ex.message;
      pending.kind = 'pending';
      this.queue('messages');
      toast(`Message not sent: ${ex.message}`, { error: true });
      setTimeout(() => {
        log.pending = log.pending.filter((p) => p !== pending);
        if (this.channelId === channelId) this.queue('messages');
      }, 8000);
    }
  }

  onComposerInput() {
    this.autosize();
    const now = Date.now();
    if (!this.editing && this.channelId && $('composer-input').value.trim() && now - this.lastTypingSent > typingEveryMs) {
      this.lastTypingSent = now;
      this.api.post(`/channels/${this.channelId}/typing`).catch(() => {});
    }
  }

  async deleteMessage(m, skipConfirm) {
    if (!skipConfirm) {
      const ok = await formModal('Delete message', {
        intro: 'Delete this message? This cannot be undone. (Shift-click the delete button to skip this question.)',
        submitLabel: 'Delete', danger: true,
      });
      if (!ok) return;
    }
    try {
      await this.api.delete(`/channels/${m.channel_id}/messages/${m.id}`);
      this.store.messageDelete({ id: m.id, channel_id: m.channel_id });
    } catch (ex) {
      toast(`Could not delete: ${ex.message}`, { error: true });
    }
  }

  renderTyping() {
    const ids = this.channelId ? this.store.typers(this.channelId) : [];
    const names = ids.map((id) => this.store.displayName(id, this.guildId));
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length === 3) text = `${names[0]}, ${names[1]} and ${names[2]} are typing…`;
    else if (names.length > 3) text = 'Several people are typing…';
    const t = $('typing');
    if (t.textContent !== text) t.textContent = text;
  }
}
