// Dialogs: create a guild or a channel, invite people, join with an invite, the
// invite a page was opened on (/invite/{code}), and a new group DM. Methods of
// App (see mixin).

import { ApiError } from './api.js';
import { ChannelType, isLarge } from './store.js';
import { modal, formModal, toast } from './modal.js';
import { avatar } from './markup.js';
import { $, el } from './dom.js';

// Discord's limit: a group DM has at most 10 people, its creator included.
const maxGroupPicks = 9;
// Large guilds send no member lists: the dialog searches them (members/search)
// as the reader types, in at most this many guilds, this many members each.
const maxSearchedGuilds = 10;
const searchLimit = 25;
const searchPauseMs = 250;

export const inviteKey = 'guildhall.invite';

export class Dialogs {
  // ---------------------------------------------------------------- guilds, channels, invites

  async createGuild() {
    const res = await formModal('Create a server', {
      intro: 'Your server is where you and your friends hang out.',
      fields: [{ name: 'name', label: 'Server name', maxLength: 100, value: this.store.me ? `${this.store.me.username}'s server` : '', autofocus: true }],
      submitLabel: 'Create',
      submit: async ({ name }) => {
        if (name.trim().length < 2) throw new Error('A server name needs at least 2 characters.');
        return this.api.post('/guilds', { name: name.trim() });
      },
    });
    if (res && res.id) this.goToGuild(res.id);
  }

  goToGuild(guildId, channelId) {
    if (this.store.guilds.get(guildId)?.channelIds.size) this.selectGuild(guildId, channelId);
    else {
      // GUILD_CREATE is on its way over the gateway.
      this.pendingGuild = guildId;
      this.pendingChannel = channelId || null;
    }
  }

  async createChannel() {
    const g = this.store.guilds.get(this.guildId);
    if (!g) return;
    const cats = this.store.channelTree(g.id).filter((x) => x.category).map((x) => [x.category.id, x.category.name]);
    const res = await formModal('Create a channel', {
      fields: [
        { name: 'name', label: 'Channel name', maxLength: 100, placeholder: 'new-channel', autofocus: true },
        { name: 'type', label: 'Type', options: [['0', 'Text channel'], ['4', 'Category']] },
        ...(cats.length ? [{ name: 'parent', label: 'Category', options: [['', 'None'], ...cats] }] : []),
      ],
      submitLabel: 'Create',
      submit: async ({ name, type, parent }) => {
        const body = { name: type === '0' ? name.trim().toLowerCase().replace(/\s+/g, '-') : name.trim(), type: Number(type) };
        if (!body.name) throw new Error('Give the channel a name.');
        if (parent && type === '0') body.parent_id = parent;
        return this.api.post(`/guilds/${g.id}/channels`, body);
      },
    });
    if (res && res.id) {
      this.store.addChannel(res);
      if (res.type !== ChannelType.CATEGORY) this.selectChannel(res.id);
    }
  }

  async invitePeople() {
    const channelId = this.channelId;
    if (!channelId) return;
    let inv;
    try {
      inv = await this.api.post(`/channels/${channelId}/invites`, { max_age: 7 * 24 * 3600 });
    } catch (ex) {
      toast(`Could not create an invite: ${ex.message}`, { error: true });
      return;
    }
    const link = `${location.origin}/invite/${inv.code}`;
    await modal(`Invite friends to ${this.store.guilds.get(this.guildId)?.name || 'this server'}`, (box, close) => {
      const input = el('input', { readonly: true, value: link, 'aria-label': 'Invite link', id: 'invite-link' });
      const copy = el('button', {
        type: 'button', class: 'primary', text: 'Copy',
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(link);
            copy.textContent = 'Copied';
          } catch {
            input.select();
          }
        },
      });
      box.append(el('p', { text: 'Send this link to someone. It expires in 7 days.' }), el('div', { class: 'copy-row' }, input, copy),
        el('div', { class: 'buttons' }, el('button', { type: 'button', class: 'secondary', text: 'Done', onclick: () => close() })));
      setTimeout(() => input.select(), 0);
    });
  }

  async joinGuild() {
    await formModal('Join a server', {
      intro: 'Paste an invite link or code.',
      fields: [{ name: 'invite', label: 'Invite link', placeholder: `${location.origin}/invite/abc123`, autofocus: true }],
      submitLabel: 'Join',
      submit: async ({ invite }) => {
        const code = invite.trim().replace(/\/+$/, '').split('/').pop();
        if (!code) throw new Error('Paste an invite link or code.');
        await this.acceptInvite(code);
        return true;
      },
    });
  }

  async acceptInvite(code) {
    const res = await this.api.post(`/invites/${encodeURIComponent(code)}`, {});
    toast(res.new_member === false ? `You are already in ${res.guild.name}.` : `Joined ${res.guild.name}.`);
    this.goToGuild(res.guild.id, res.channel && res.channel.id);
    return res;
  }

  /** Opens the invite this page was loaded with (/invite/{code}) once the session is ready. */
  async maybeAcceptInvite() {
    const code = sessionStorage.getItem(inviteKey);
    if (!code || this.inviteShown || !this.store.me) return;
    this.inviteShown = true;
    let preview = null;
    try {
      preview = await this.api.get(`/invites/${encodeURIComponent(code)}?with_counts=true`);
    } catch (ex) {
      if (ex instanceof ApiError && !ex.unknownRoute) {
        sessionStorage.removeItem(inviteKey);
        history.replaceState(null, '', '/');
        toast(`This invite is not valid: ${ex.message}`, { error: true });
        return;
      }
      // An older server has no preview: accepting tells.
    }
    const already = preview && this.store.guilds.has(preview.guild.id);
    const intro = preview
      ? `${preview.inviter ? `${preview.inviter.username} invited you` : 'You have been invited'} to join ${preview.guild.name}${preview.approximate_member_count ? ` (${preview.approximate_member_count} members)` : ''}.`
      : `You have been invited to join a server (invite ${code}).`;
    // The invite is in hand: a reload should not offer it again.
    sessionStorage.removeItem(inviteKey);
    if (location.pathname.startsWith('/invite/')) history.replaceState(null, '', '/');
    await formModal(already ? `You are in ${preview.guild.name}` : 'Join a server', {
      intro,
      submitLabel: already ? 'Open' : 'Accept invite',
      submit: async () => (already ? this.goToGuild(preview.guild.id) : this.acceptInvite(code)),
    });
  }

  // ---------------------------------------------------------------- group DMs

  /**
   * The people a group DM can be opened with: members of this user's guilds
   * (the server refuses anyone who shares none), bots and oneself left out.
   * Large guilds send no member lists: their members count once seen (in
   * messages, or found by searchLargeGuilds).
   */
  groupCandidates() {
    const me = this.store.me && this.store.me.id;
    const out = new Map();
    for (const g of this.store.guilds.values()) {
      for (const m of g.members.values()) if (m.user && m.user.id !== me && !m.user.bot) out.set(m.user.id, m.user);
    }
    const name = (u) => this.store.displayName(u.id);
    return [...out.values()].sort((a, b) => name(a).localeCompare(name(b)));
  }

  /**
   * Asks the large guilds (which send no member list) for members whose name
   * starts with query (GET …/members/search), and keeps them in the store;
   * reports whether any was found.
   */
  async searchLargeGuilds(query) {
    if (!query) return false;
    const large = this.store.guildOrder.map((id) => this.store.guilds.get(id)).filter((g) => g && isLarge(g)).slice(0, maxSearchedGuilds);
    let found = false;
    await Promise.all(large.map(async (g) => {
      try {
        const members = await this.api.get(`/guilds/${g.id}/members/search?query=${encodeURIComponent(query.slice(0, 32))}&limit=${searchLimit}`);
        for (const m of members) this.store.addMember(g.id, m);
        found = found || members.length > 0;
      } catch { /* a guild left meanwhile: the others still answer */ }
    }));
    return found;
  }

  /**
   * "New group message" (the DM list's button): pick people who share a guild
   * with you; two or more make a group DM (POST /users/@me/channels with
   * recipients, announced to everyone in it with CHANNEL_CREATE), one opens the
   * DM with them.
   */
  /** Leaves the open group DM (DELETE /channels/{id}), once confirmed; the others see it live (CHANNEL_RECIPIENT_REMOVE). */
  async leaveGroup() {
    const ch = this.store.channels.get(this.channelId);
    if (!ch || ch.type !== ChannelType.GROUP_DM) return;
    const left = await formModal(`Leave ${this.store.channelLabel(ch)}?`, {
      intro: 'You will no longer see its messages, and you cannot come back unless someone starts a new group with you.',
      submitLabel: 'Leave group',
      danger: true,
      submit: () => this.api.delete(`/channels/${ch.id}`),
    });
    if (left === undefined) return;
    this.store.removeChannel(ch.id); // its CHANNEL_DELETE comes too; removing twice is nothing
    if (this.channelId === ch.id) this.selectGuild(this.guildId);
  }

  async newGroupDM() {
    // Member lists come over the gateway: ask for the guilds not asked yet.
    for (const id of this.store.guildOrder) if (!isLarge(this.store.guilds.get(id))) this.requestMembers(id);
    const chosen = new Set();
    const ch = await modal('New group message', (box, close) => {
      const intro = el('p', { text: `Pick up to ${maxGroupPicks} people who share a server with you. Two or more make a group; one opens your conversation with them.` });
      const find = el('input', { type: 'search', id: 'group-find', autocomplete: 'off', placeholder: 'Type a name', 'aria-controls': 'group-people' });
      const list = el('ul', { class: 'people-picker', id: 'group-people', 'aria-label': 'People' });
      const count = el('p', { class: 'picked', 'aria-live': 'polite' });
      const err = el('p', { class: 'form-error', role: 'alert' });
      const ok = el('button', { type: 'submit', class: 'primary', text: 'Create group', disabled: true });
      const form = el('form', { class: 'group-form' },
        el('label', { for: 'group-find', text: 'Find people' }), find, list, count, err,
        el('div', { class: 'buttons' }, el('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => close() }), ok));
      form.noValidate = true;
      let drawnIds = '';
      const update = () => {
        const n = chosen.size;
        count.textContent = n ? `${n} picked${n >= maxGroupPicks ? ' (the most a group can have)' : ''}` : 'Nobody picked yet.';
        ok.disabled = n === 0;
        ok.textContent = n === 1 ? 'Open conversation' : 'Create group';
        for (const box of list.querySelectorAll('input[type=checkbox]')) box.disabled = !box.checked && n >= maxGroupPicks;
      };
      const filter = () => {
        const q = find.value.trim().toLowerCase();
        for (const li of list.children) li.hidden = !!q && !li.dataset.name.toLowerCase().includes(q);
      };
      const draw = () => {
        const people = this.groupCandidates();
        const ids = people.map((u) => u.id).join(',');
        if (ids === drawnIds) return; // nothing new: keep the nodes (and the focus)
        drawnIds = ids;
        const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('#group-people') ? document.activeElement.value : null;
        list.textContent = '';
        if (!people.length) list.append(el('li', { class: 'sidebar-note', dataset: { name: '' }, text: 'Nobody shares a server with you yet.' }));
        for (const u of people) {
          const name = this.store.displayName(u.id);
          const id = `group-pick-${u.id}`;
          const box = el('input', { type: 'checkbox', id, value: u.id, checked: chosen.has(u.id) });
          box.addEventListener('change', () => {
            if (box.checked) chosen.add(u.id);
            else chosen.delete(u.id);
            update();
          });
          list.append(el('li', { dataset: { name, userId: u.id } }, box,
            el('label', { for: id, class: 'person' }, avatar(u, 'avatar tiny'), el('span', { text: name }))));
        }
        filter();
        update();
        if (focused) document.getElementById(`group-pick-${focused}`)?.focus();
      };
      let searchTimer = 0;
      find.addEventListener('input', () => {
        filter();
        clearTimeout(searchTimer);
        searchTimer = setTimeout(async () => {
          if (await this.searchLargeGuilds(find.value.trim())) draw();
        }, searchPauseMs);
      });
      // Enter in the search box picks the only person it leaves.
      find.addEventListener('keydown', (e) => {
        if (e.key !== 'Enter') return;
        e.preventDefault();
        const shown = [...list.querySelectorAll('li:not([hidden]) input[type=checkbox]:not(:disabled)')];
        if (shown.length === 1) shown[0].click();
      });
      // A separate character event (automation, some input methods) must not submit the form either.
      find.addEventListener('keypress', (e) => { if (e.key === 'Enter') e.preventDefault(); });
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const ids = [...chosen];
        if (!ids.length) return;
        ok.disabled = true;
        err.textContent = '';
        try {
          const one = ids.length === 1 && this.store.dmWith(ids[0]);
          close(one || await this.api.post('/users/@me/channels', ids.length === 1 ? { recipient_id: ids[0] } : { recipients: ids }));
        } catch (ex) {
          err.textContent = `Could not open the conversation: ${ex.message}`;
          ok.disabled = false;
        }
      });
      this.groupPickerRedraw = draw;
      draw();
      box.append(intro, form);
    });
    this.groupPickerRedraw = null;
    if (!ch || !ch.id) return;
    this.store.addChannel(ch); // CHANNEL_CREATE brings it too; the store keeps it once
    this.selectChannel(ch.id);
    $('composer-input').focus();
  }
}
