// The composer: Enter sends, Shift+Enter is a new line, Up edits the last own
// message, Escape cancels an edit or a reply; sending shows the message at once
// (pending) until the server confirms it; typing indicators both ways. Methods of
// App (see mixin).

import { newNonce } from './snowflake.js';
import { formModal, toast } from './modal.js';
import { $, el, svg, icons } from './dom.js';
import { formatSize } from './rows.js';

const typingEveryMs = 8000;
// Discord's limits, which the server keeps too: 10 files a message, 25 MiB a post.
const maxFiles = 10;
const maxUploadBytes = 25 << 20;

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

  // ---------------------------------------------------------------- files

  /** Adds files (from the button, a drop or a paste) to the next message, within Discord's limits. */
  addFiles(files) {
    if (!this.channelId || this.editing) return;
    let total = this.uploads.reduce((n, u) => n + u.file.size, 0);
    for (const file of files) {
      if (this.uploads.length >= maxFiles) {
        toast(`At most ${maxFiles} files go with one message.`, { error: true });
        break;
      }
      if (total + file.size > maxUploadBytes) {
        toast(`${file.name} is too large: a message's files can be ${formatSize(maxUploadBytes)} together.`, { error: true });
        continue;
      }
      total += file.size;
      const image = /^image\/(png|jpeg|gif|webp)$/.test(file.type);
      this.uploads.push({ file, key: `${Date.now()}:${Math.random()}`, url: image ? URL.createObjectURL(file) : null });
    }
    this.renderUploads();
    $('composer-input').focus();
  }

  removeUpload(key) {
    const u = this.uploads.find((x) => x.key === key);
    if (u && u.url) URL.revokeObjectURL(u.url);
    this.uploads = this.uploads.filter((x) => x.key !== key);
    this.renderUploads();
    $('composer-input').focus();
  }

  renderUploads() {
    const ul = $('uploads');
    ul.textContent = '';
    ul.hidden = !this.uploads.length;
    for (const u of this.uploads) {
      const name = u.file.name || 'file';
      ul.append(el('li', { class: 'upload', dataset: { key: u.key } },
        u.url ? el('img', { src: u.url, alt: '' }) : svg(icons.file),
        el('span', { class: 'name', text: name }),
        el('span', { class: 'size', text: formatSize(u.file.size) }),
        el('button', { type: 'button', class: 'icon-button', 'aria-label': `Remove ${name}`, title: 'Remove', onclick: () => this.removeUpload(u.key) }, svg(icons.close))));
    }
  }

  /** Files dragged over the chat: show where to drop them. */
  onDrag(e) {
    if (!this.channelId || !e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
    e.preventDefault();
    const chat = $('chat');
    if (e.type === 'drop') {
      chat.classList.remove('dropping');
      this.addFiles([...e.dataTransfer.files]);
    } else if (e.type === 'dragleave') {
      if (!chat.contains(e.relatedTarget)) chat.classList.remove('dropping');
    } else {
      e.dataTransfer.dropEffect = 'copy';
      chat.classList.add('dropping');
    }
  }

  onPaste(e) {
    const files = e.clipboardData ? [...e.clipboardData.files] : [];
    if (!files.length) return; // text pastes as text
    e.preventDefault();
    this.addFiles(files);
  }

  async submitComposer() {
    const input = $('composer-input');
    const content = input.value.trim();
    const channelId = this.channelId;
    if (!channelId) return;
    if (this.editing) {
      const m = this.editing;
      this.cancelContext(true);
      if (!content && !(m.attachments || []).length) {
        this.deleteMessage(m, false); // nothing would be left
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
    const uploads = this.uploads;
    if (!content && !uploads.length) return;
    if (content.length > 2000) {
      toast('Messages can be at most 2000 characters.', { error: true });
      return;
    }
    // Opened at the first unread with newer pages not loaded: what is sent shows
    // below the newest messages, so go there first.
    if (this.store.logs.get(channelId)?.hasNewer) this.jumpToPresent();
    const replyTo = this.replyTo;
    this.cancelContext(false);
    this.uploads = [];
    this.renderUploads();
    input.value = '';
    this.drafts.delete(channelId);
    this.autosize();
    this.lastTypingSent = 0;
    const nonce = newNonce();
    const log = this.store.log(channelId);
    const pending = {
      kind: 'pending', key: `p:${nonce}`, id: null, nonce, channel_id: channelId, guild_id: this.guildId, content,
      author: this.store.me, timestamp: new Date().toISOString(),
      message_reference: replyTo ? { message_id: replyTo.id } : undefined, referenced_message: replyTo || undefined,
      uploading: uploads.map((u) => `${u.file.name} (${formatSize(u.file.size)})`),
      progress: null, // {loaded, total} of the upload, drawn in place (drawProgress)
      abort: null,
    };
    log.pending.push(pending);
    this.list.scrollToBottom();
    this.queue('messages');
    const body = { content, nonce };
    if (replyTo) body.message_reference = { message_id: replyTo.id, channel_id: replyTo.channel_id, guild_id: replyTo.guild_id, fail_if_not_exists: false };
    let req = body;
    if (uploads.length) {
      // Discord's multipart post: files[n] and payload_json naming them.
      req = new FormData();
      body.attachments = uploads.map((u, i) => ({ id: i, filename: u.file.name }));
      req.append('payload_json', JSON.stringify(body));
      uploads.forEach((u, i) => req.append(`files[${i}]`, u.file, u.file.name));
    }
    const controller = uploads.length ? new AbortController() : null;
    if (controller) pending.abort = () => controller.abort();
    try {
      const m = controller
        ? await this.api.upload(`/channels/${channelId}/messages`, req, {
          signal: controller.signal,
          onProgress: (loaded, total) => {
            pending.progress = { loaded, total };
            this.drawProgress(pending);
          },
        })
        : await this.api.post(`/channels/${channelId}/messages`, req);
      log.pending = log.pending.filter((p) => p !== pending);
      for (const u of uploads) if (u.url) URL.revokeObjectURL(u.url);
      this.store.messageCreate(m); // deduplicated with the gateway's MESSAGE_CREATE by id
      this.list.scrollToBottom();
    } catch (ex) {
      // The text and the files go back to the composer, to try again.
      this.restoreComposer(channelId, content, uploads, replyTo);
      if (ex.name === 'AbortError') {
        log.pending = log.pending.filter((p) => p !== pending);
        if (this.channelId === channelId) this.queue('messages');
        toast('Upload cancelled: the message was not sent.');
        return;
      }
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

  /**
   * Puts a message that was not sent back where it was written: the composer
   * when it is empty (a draft when another channel is open), its files and the
   * message it replied to with it.
   */
  restoreComposer(channelId, content, uploads, replyTo) {
    if (this.channelId === channelId) {
      const input = $('composer-input');
      if (!input.value && !this.editing) {
        input.value = content;
        this.autosize();
        if (replyTo && !this.replyTo) this.startReply(replyTo);
      }
      if (uploads.length && !this.uploads.length) {
        this.uploads = uploads;
        this.renderUploads();
      }
      return;
    }
    if (!this.drafts.get(channelId)) this.drafts.set(channelId, content);
    if (uploads.length && !(this.uploadDrafts.get(channelId) || []).length) this.uploadDrafts.set(channelId, uploads);
  }

  /** A pending message's upload: a progress bar and a button that cancels it. */
  uploadProgress(m) {
    const names = m.uploading.join(', ');
    const pct = this.uploadPercent(m);
    return el('div', { class: 'uploading' },
      el('span', { class: 'upload-label', text: `Uploading ${names}` }),
      el('span', { class: 'upload-bar' },
        el('progress', { max: '100', value: String(pct), 'aria-label': `Upload of ${names}` }),
        el('span', { class: 'upload-percent', 'aria-hidden': 'true', text: `${pct}%` })),
      el('button', {
        type: 'button', class: 'link upload-cancel', 'aria-label': `Cancel the upload of ${names}`,
        onclick: () => m.abort && m.abort(),
      }, 'Cancel'));
  }

  uploadPercent(m) {
    const p = m.progress;
    return p && p.total ? Math.min(100, Math.floor((p.loaded / p.total) * 100)) : 0;
  }

  /** Moves a drawn progress bar (redrawing the row would lose the cancel button's focus). */
  drawProgress(m) {
    const row = this.list && this.list.rowEl(m.key);
    const bar = row && row.querySelector('progress');
    if (!bar) return;
    const pct = this.uploadPercent(m);
    if (Number(bar.value) === pct) return;
    bar.value = pct;
    row.querySelector('.upload-percent').textContent = `${pct}%`;
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
