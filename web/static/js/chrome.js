// The frame around the chat: theme, the phone drawers, keyboard shortcuts, and
// the listeners of the page's fixed elements. Methods of App (see mixin).

import { modalOpen } from './modal.js';
import { $ } from './dom.js';

export const themeKey = 'guildhall.theme';

export class Chrome {
  // ---------------------------------------------------------------- chrome

  applyTheme(theme) {
    this.theme = theme;
    if (theme === 'system') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    const b = $('theme-toggle');
    if (b) {
      const label = { system: 'Theme: system (click for light)', light: 'Theme: light (click for dark)', dark: 'Theme: dark (click for system)' }[theme];
      b.setAttribute('aria-label', label);
      b.title = label;
    }
  }

  cycleTheme() {
    const next = { system: 'light', light: 'dark', dark: 'system' }[this.theme] || 'system';
    localStorage.setItem(themeKey, next);
    this.applyTheme(next);
  }

  toggleNav(open) {
    const shell = $('shell');
    const on = open ?? !shell.classList.contains('nav-open');
    shell.classList.toggle('nav-open', on);
    shell.classList.remove('members-open');
    $('open-nav').setAttribute('aria-expanded', String(on));
    $('scrim').hidden = !on;
    if (on) (document.querySelector('.channel[aria-current="true"]') || document.querySelector('.guild-button'))?.focus();
  }

  toggleMembers() {
    const shell = $('shell');
    if (window.matchMedia('(max-width: 1100px)').matches) {
      const on = !shell.classList.contains('members-open');
      shell.classList.toggle('members-open', on);
      shell.classList.remove('nav-open');
      $('scrim').hidden = !on;
      $('toggle-members').setAttribute('aria-pressed', String(on));
    } else {
      const hidden = shell.classList.toggle('members-hidden');
      $('toggle-members').setAttribute('aria-pressed', String(!hidden));
    }
    $('toggle-members').setAttribute('aria-label', 'Show members');
  }

  closeDrawers(focusComposer) {
    const shell = $('shell');
    const was = shell.classList.contains('nav-open') || shell.classList.contains('members-open');
    shell.classList.remove('nav-open', 'members-open');
    $('open-nav').setAttribute('aria-expanded', 'false');
    $('scrim').hidden = true;
    if (was && focusComposer) $('composer-input').focus();
    return was;
  }

  moveChannel(step) {
    const list = [...document.querySelectorAll('#channel-list .channel:not([disabled])')];
    const i = list.findIndex((b) => b.dataset.channelId === this.channelId);
    const next = list[i + step];
    if (next) this.selectChannel(next.dataset.channelId);
  }

  bindStatic() {
    $('auth-form').addEventListener('submit', (e) => this.submitAuth(e));
    $('auth-switch').addEventListener('click', () => {
      this.setAuthMode(this.authMode === 'login' ? 'register' : 'login');
      $('auth-error').textContent = '';
    });
    $('composer').addEventListener('submit', (e) => { e.preventDefault(); this.submitComposer(); });
    $('composer-input').addEventListener('keydown', (e) => this.onComposerKey(e));
    $('composer-input').addEventListener('input', () => this.onComposerInput());
    // A keydown that sends already stops the new line; a separate character
    // event (some input methods, automation) must not add one either.
    $('composer-input').addEventListener('keypress', (e) => { if (e.key === 'Enter' && !e.shiftKey) e.preventDefault(); });
    $('composer-cancel').addEventListener('click', () => this.cancelContext(true));
    $('attach').addEventListener('click', () => $('file-input').click());
    $('file-input').addEventListener('change', (e) => {
      this.addFiles([...e.target.files]);
      e.target.value = ''; // the same file can be chosen again
    });
    for (const t of ['dragenter', 'dragover', 'dragleave', 'drop']) $('chat').addEventListener(t, (e) => this.onDrag(e));
    // A file dropped anywhere else must not make the browser leave the client to show it.
    for (const t of ['dragover', 'drop']) {
      window.addEventListener(t, (e) => {
        if (e.dataTransfer && [...e.dataTransfer.types].includes('Files')) e.preventDefault();
      });
    }
    $('composer-input').addEventListener('paste', (e) => this.onPaste(e));
    $('home').addEventListener('click', () => this.selectGuild('@me'));
    $('messages').addEventListener('keydown', (e) => this.onListKey(e));
    // The composer grows with its text; a new width changes how the text wraps.
    new ResizeObserver(() => this.autosize()).observe($('composer'));
    $('jump').addEventListener('click', () => {
      this.jumpToPresent();
      $('composer-input').focus();
    });
    $('add-guild').addEventListener('click', () => this.createGuild());
    $('join-guild').addEventListener('click', () => this.joinGuild());
    $('create-channel').addEventListener('click', () => this.createChannel());
    $('new-group').addEventListener('click', () => this.newGroupDM());
    $('leave-group').addEventListener('click', () => this.leaveGroup());
    $('invite-people').addEventListener('click', () => this.invitePeople());
    $('logout').addEventListener('click', () => this.logout());
    $('theme-toggle').addEventListener('click', () => this.cycleTheme());
    $('open-nav').addEventListener('click', () => this.toggleNav());
    $('toggle-members').addEventListener('click', () => this.toggleMembers());
    $('scrim').addEventListener('click', () => this.closeDrawers(true));
    document.addEventListener('visibilitychange', () => this.markRead());
    window.addEventListener('pagehide', () => this.flushAcks(true));
    window.addEventListener('focus', () => this.markRead());
    document.addEventListener('keydown', (e) => {
      if (modalOpen()) return;
      if (e.key === 'Escape') {
        if (this.pickerFor) { this.closePicker(); return; }
        if (this.closeDrawers(true)) return;
        if (this.editing || this.replyTo) { this.cancelContext(true); return; }
        if (this.channelId && this.list && !$('jump').hidden) this.jumpToPresent();
        return;
      }
      if (e.altKey && (e.key === 'ArrowUp' || e.key === 'ArrowDown') && !$('shell').hidden) {
        e.preventDefault();
        this.moveChannel(e.key === 'ArrowUp' ? -1 : 1);
        return;
      }
      // Typing anywhere goes to the composer, as in other chat applications.
      const t = e.target;
      const typingTarget = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || (t && t.isContentEditable);
      if (!typingTarget && !$('shell').hidden && !$('composer').hidden && e.key.length === 1 && !e.ctrlKey && !e.metaKey && !e.altKey) {
        $('composer-input').focus();
      }
    });
  }
}
