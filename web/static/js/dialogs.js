// Dialogs: create a guild or a channel, invite people, join with an invite, and
// the invite a page was opened on (/invite/{code}). Methods of App (see mixin).

import { ApiError } from './api.js';
import { ChannelType } from './store.js';
import { modal, formModal, toast } from './modal.js';
import { el } from './dom.js';

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
}
