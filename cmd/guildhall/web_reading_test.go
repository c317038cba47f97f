package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/guildhall/guildhall/testenv"
)

// throttleUploads makes the page's message posts (not the rest of its traffic)
// go out at bytesPerSecond, as on a slow link; 0 lifts it. The loopback is too
// fast to see an upload's progress or to cancel one half way otherwise.
func (p *page) throttleUploads(bytesPerSecond float64) {
	p.t.Helper()
	p.do(5*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		rules := []*network.Conditions{} // none: no throttling
		if bytesPerSecond > 0 {
			rules = append(rules, &network.Conditions{
				URLPattern:         p.base + "/api/v10/channels/*/messages",
				UploadThroughput:   bytesPerSecond,
				DownloadThroughput: -1,
			})
		}
		_, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{MatchedNetworkConditions: rules})
		return err
	}))
}

// drawerOpen is true once the phone's drawer of servers and channels has slid
// all the way in (a click during the slide can miss).
const drawerOpen = `(() => { const r = document.getElementById('sidebar').getBoundingClientRect(), rail = document.getElementById('rail').getBoundingClientRect(); return rail.left === 0 && r.left === rail.right; })()`

// channelButton is a JavaScript expression for the sidebar's button of channel id.
func channelButton(id string) string {
	return fmt.Sprintf(`document.querySelector('.channel[data-channel-id="%s"]')`, id)
}

// TestWebUnreadUploadsGroups drives three things a person does in the client,
// with real users in real browsers: opening a channel at its first unread
// message (a "new messages" divider, history paged both ways, jump to present),
// an upload's progress, its cancellation and a refusal that keeps what was
// written, and a group DM made from the DM list that everyone in it sees live.
func TestWebUnreadUploadsGroups(t *testing.T) {
	s := startStack(t, t.TempDir())
	b := testenv.StartBrowser(t)
	shots := screenshotDir(t)

	aliceName, bobName, carolName := "alice"+randName(), "bob"+randName(), "carol"+randName()
	aliceToken, _ := s.rest.Register(t, aliceName)
	bobToken, _ := s.rest.Register(t, bobName)
	carolToken, _ := s.rest.Register(t, carolName)
	var g struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds", aliceToken, map[string]string{"name": "Reading"}, &g)
	var chans []struct{ ID string }
	s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", aliceToken, nil, &chans)
	general := chans[0].ID
	var busy struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", aliceToken, map[string]any{"name": "busy", "type": 0}, &busy)
	var inv struct{ Code string }
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+general+"/invites", aliceToken, map[string]any{}, &inv)
	for _, tok := range []string{bobToken, carolToken} {
		s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, tok, nil, nil)
	}
	ack := func(token, channel, id string) {
		t.Helper()
		s.rest.Must(t, http.StatusOK, "POST", "/channels/"+channel+"/messages/"+id+"/ack", token, map[string]any{}, nil)
	}

	// #general: 60 messages Bob has read. #busy: five old ones, the one Bob read
	// last, then 300 he has not (the first unread is six pages of 50 back).
	var lastGeneral message
	for i := range 60 {
		lastGeneral = s.post(t, aliceToken, general, fmt.Sprintf("general %02d", i))
	}
	ack(bobToken, general, lastGeneral.ID)
	for i := range 5 {
		s.post(t, aliceToken, busy.ID, fmt.Sprintf("old %d", i))
	}
	lastRead := s.post(t, aliceToken, busy.ID, "the last one bob read")
	ack(bobToken, busy.ID, lastRead.ID)
	const n = 300
	unread := make([]message, n)
	for i := range n {
		unread[i] = s.post(t, aliceToken, busy.ID, fmt.Sprintf("unread %03d", i))
	}

	bob := openPage(t, b, s, "bob", 1280, 800)
	bob.signIn(bobToken)
	bob.waitFor("#general", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s`, jsString(general)), 10*time.Second)

	t.Run("a channel without unread opens at the newest message", func(t *testing.T) {
		bob.t = t
		bob.waitFor("the newest message of #general", msgRow(lastGeneral.ID), 10*time.Second)
		if eval[bool](bob, `!!document.querySelector('.unread-divider') || !document.getElementById('jump').hidden`) {
			t.Fatal("#general, read to its end, shows a new-messages divider or the jump button")
		}
		if !eval[bool](bob, channelButton(busy.ID)+`.classList.contains('unread')`) {
			t.Fatal("#busy is not marked unread")
		}
	})

	// The divider's row comes right after the last read message's and right
	// before the first unread one's (the list's rows are numbered: aria-posinset).
	dividerBetween := func(before, after string) string {
		return fmt.Sprintf(`(() => {
			const d = document.querySelector('#messages .unread-divider');
			const pos = (e) => e ? Number(e.closest('.vlist-row').getAttribute('aria-posinset')) : NaN;
			return !!d && d.textContent === 'New' && d.getAttribute('aria-label') === 'New messages' &&
				pos(d) === pos(%s) + 1 && pos(d) + 1 === pos(%s);
		})()`, msgRow(before), msgRow(after))
	}
	// inView: the divider near the top of the message list, the first unread below it, on screen.
	inView := func(first string) string {
		return fmt.Sprintf(`(() => {
			const d = document.querySelector('#messages .unread-divider'), f = %s;
			if (!d || !f) return false;
			const m = document.getElementById('messages').getBoundingClientRect(), r = d.getBoundingClientRect(), fr = f.getBoundingClientRect();
			return r.top >= m.top && r.top <= m.top + 80 && fr.top >= r.bottom - 1 && fr.bottom <= m.bottom;
		})()`, msgRow(first))
	}
	scrollDownUntil := func(p *page, what, predicate string) {
		p.t.Helper()
		p.waitFor(what, `(() => {
			if (`+predicate+`) return true;
			const m = document.getElementById('messages');
			m.scrollTop = m.scrollHeight;
			m.dispatchEvent(new Event('scroll'));
			return false;
		})()`, 30*time.Second)
	}

	var live message // posted while Bob reads #busy from its first unread message
	t.Run("a channel with unread opens at the first unread message", func(t *testing.T) {
		bob.t = t
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, busy.ID))
		bob.waitFor("the divider at the top, the first unread below it", inView(unread[0].ID), 15*time.Second)
		if !eval[bool](bob, dividerBetween(lastRead.ID, unread[0].ID)) {
			t.Fatal("the divider is not between the last read message and the first unread one")
		}
		// Not everything is loaded (the pages below load as the reader nears
		// them): the client offers to jump to the newest.
		if eval[bool](bob, msgRow(unread[n-1].ID)+` !== null`) || listSize(bob) >= 1+6+1+n {
			t.Fatalf("the client loaded %d rows, the newest among them; it should start at the first unread", listSize(bob))
		}
		bob.waitFor("the jump button", `!document.getElementById('jump').hidden`, 5*time.Second)
		testenv.Screenshot(t, bob.ctx, shots, "web-first-unread")

		// A message posted meanwhile shows once the reader gets there, once.
		live = s.post(t, aliceToken, busy.ID, "posted while bob reads")
		time.Sleep(300 * time.Millisecond)
		if messageCount(bob, live.ID) != 0 {
			t.Fatal("the live message was drawn below the first unread page, skipping the messages between")
		}
		// Scrolling down pages the rest in (after=) until the newest.
		scrollDownUntil(bob, "the live message at the bottom", msgRow(live.ID)+` !== null && document.getElementById('jump').hidden`)
		if got, want := listSize(bob), 1+6+1+n+1; got != want {
			t.Fatalf("the list holds %d rows; want the start, 6 read messages, the divider, %d unread and the live one (%d)", got, n, want)
		}
		if c := messageCount(bob, live.ID); c != 1 {
			t.Fatalf("the live message is drawn %d times", c)
		}
		// Read to the end: acked, so the server has #busy read.
		bob.waitFor("the ack", `performance.getEntriesByType('resource').some(e => e.name.includes('/channels/`+busy.ID+`/messages/`+live.ID+`/ack'))`, 10*time.Second)
		bob.open("/")
		bob.waitConn("connected", 15*time.Second)
		bob.waitFor("#busy again, at the newest message", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s && %s !== null`, jsString(busy.ID), msgRow(live.ID)), 15*time.Second)
		if eval[bool](bob, `!!document.querySelector('.unread-divider')`) {
			t.Fatal("after reading #busy to its end and a reload, it still opens at a divider")
		}
	})

	t.Run("jump to present", func(t *testing.T) {
		bob.t = t
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, general))
		bob.waitFor("#general", msgRow(lastGeneral.ID), 10*time.Second)
		more := make([]message, 150)
		for i := range more {
			more[i] = s.post(t, aliceToken, busy.ID, fmt.Sprintf("more %03d", i))
		}
		bob.waitFor("#busy unread", channelButton(busy.ID)+`.classList.contains('unread')`, 10*time.Second)
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, busy.ID))
		bob.waitFor("the divider above the first new one", inView(more[0].ID), 15*time.Second)
		if eval[bool](bob, msgRow(more[len(more)-1].ID)+` !== null`) {
			t.Fatal("the newest message is drawn already")
		}
		// The button, with the keyboard.
		bob.waitFor("the jump button", `!document.getElementById('jump').hidden`, 5*time.Second)
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#jump")))
		bob.key(kb.Enter)
		bob.waitFor("the newest message, at the bottom", fmt.Sprintf(`(() => {
			const r = %s;
			if (!r || !document.getElementById('jump').hidden) return false;
			const m = document.getElementById('messages').getBoundingClientRect();
			return r.getBoundingClientRect().bottom <= m.bottom + 1;
		})()`, msgRow(more[len(more)-1].ID)), 15*time.Second)
		bob.waitFor("the composer focused", `document.activeElement === document.getElementById('composer-input')`, 5*time.Second)
		// Scrolling up from the present pages back to the divider, each message once.
		bob.waitFor("the divider again, scrolling up", `(() => {
			if (document.querySelector('#messages .unread-divider')) return true;
			const m = document.getElementById('messages');
			m.scrollTop = Math.max(0, m.scrollTop - m.clientHeight);
			m.dispatchEvent(new Event('scroll'));
			return false;
		})()`, 30*time.Second)
		bob.waitFor("the divider between the last read message and the first new one", dividerBetween(live.ID, more[0].ID), 10*time.Second)
		// Escape, the other way back.
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#messages")))
		bob.key(kb.Escape)
		bob.waitFor("the newest again", msgRow(more[len(more)-1].ID)+` !== null && document.getElementById('jump').hidden`, 10*time.Second)
	})

	t.Run("a log opened in the middle holds live messages until the gap closes", func(t *testing.T) {
		bob.t = t
		// The store's own module, run in the page: a page around the read mark,
		// live messages (one edited, one deleted) while the newer pages are not
		// loaded, then those pages, overlapping the live ones.
		got := eval[string](bob, `(async () => {
			const { Store } = await import('/assets/js/store.js');
			const s = new Store();
			s.me = { id: '1' };
			const m = (id, content) => ({ id, channel_id: '9', author: { id: '7' }, content: content || 'm' + id });
			const log = s.log('9');
			log.merge([m('100'), m('101')]);
			log.loaded = true;
			log.hasNewer = true;
			s.messageCreate(m('200'));
			s.messageCreate(m('201'));
			s.messageCreate(m('202'));
			s.messageUpdate(m('201', 'edited'));
			s.messageDelete({ id: '202', channel_id: '9' });
			const before = log.items.map((x) => x.id).join(',');
			log.merge([m('102'), m('200', 'from the page')]);  // the last after= page
			log.closeGap();
			s.messageCreate(m('203'));                        // live again
			return before + ' | ' + log.items.map((x) => x.id + '=' + x.content).join(',') + ' held=' + log.heldLive.length;
		})()`)
		want := "100,101 | 100=m100,101=m101,102=m102,200=from the page,201=edited,203=m203 held=0"
		if got != want {
			t.Fatalf("log = %s\nwant  %s", got, want)
		}
	})

	t.Run("uploads show progress, can be cancelled and keep the message when refused", func(t *testing.T) {
		bob.t = t
		alice := openPage(t, b, s, "alice", 1280, 800)
		alice.signIn(aliceToken)
		for _, p := range []*page{alice, bob} {
			p.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, general))
			p.waitFor("#general", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s`, jsString(general)), 10*time.Second)
		}
		dir := t.TempDir()
		big := make([]byte, 3<<20)
		if _, err := rand.Read(big); err != nil {
			t.Fatal(err)
		}
		bigPath, smallPath := filepath.Join(dir, "big.bin"), filepath.Join(dir, "small.txt")
		if err := os.WriteFile(bigPath, big, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(smallPath, []byte("small but refused"), 0o644); err != nil {
			t.Fatal(err)
		}
		chips := `[...document.querySelectorAll('#uploads .upload .name')].map(e => e.textContent).join(',')`
		progress := `document.querySelector('.msg.pending progress')`

		// 3 MiB at 1 MiB/s: the bar moves, then the message arrives with its file.
		bob.throttleUploads(1 << 20)
		bob.chooseFiles("#attach", bigPath)
		bob.waitFor("the file, ready to send", chips+` === 'big.bin'`, 5*time.Second)
		bob.send("a big file")
		bob.waitFor("the upload under way", `(() => { const p = `+progress+`; return !!p && p.value > 0 && p.value < 100; })()`, 10*time.Second)
		first := eval[float64](bob, progress+`.value`)
		if label := eval[string](bob, progress+`.getAttribute('aria-label')`); !strings.HasPrefix(label, "Upload of big.bin") {
			t.Errorf("the progress bar is named %q", label)
		}
		namedControls(t, bob)
		testenv.Screenshot(t, bob.ctx, shots, "web-upload-progress")
		bob.waitFor("the bar to move", fmt.Sprintf(`(() => { const p = %s; return !p || p.value > %v; })()`, progress, first), 10*time.Second)
		row := `[...document.querySelectorAll('.msg[data-id]')].find(e => e.dataset.id && e.querySelector('.content')?.textContent === 'a big file')`
		for _, p := range []*page{alice, bob} {
			p.waitFor("the big file's message", `(() => { const r = `+row+`; return !!r && r.querySelector('.attachment.file a')?.textContent === 'big.bin'; })()`, 20*time.Second)
		}
		bob.waitFor("no pending row", `!document.querySelector('.msg.pending')`, 5*time.Second)

		// Cancelled half way (the keyboard: focus the button, Enter): nothing is
		// sent, the text and the file are back in the composer.
		bob.chooseFiles("#attach", bigPath)
		bob.send("never sent")
		bob.waitFor("the upload under way", `(() => { const p = `+progress+`; return !!p && p.value > 0 && p.value < 100; })()`, 10*time.Second)
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS(`.msg.pending [aria-label^="Cancel the upload of big.bin"]`)))
		bob.key(kb.Enter)
		bob.waitFor("the cancelled upload gone, the message back in the composer",
			`!document.querySelector('.msg.pending') && document.getElementById('composer-input').value === 'never sent' && `+chips+` === 'big.bin' &&
			[...document.querySelectorAll('.toast')].some(e => e.textContent.startsWith('Upload cancelled'))`, 10*time.Second)
		bob.throttleUploads(0)
		time.Sleep(time.Second)
		var newest []message
		s.rest.Must(t, http.StatusOK, "GET", "/channels/"+general+"/messages?limit=1", aliceToken, nil, &newest)
		if len(newest) != 1 || newest[0].Content != "a big file" {
			t.Fatalf("after the cancel the newest message is %+v; want the big file's", newest)
		}
		if eval[bool](alice, hasContent("never sent")) {
			t.Fatal("alice sees the cancelled message")
		}

		// Refused by the server (files not allowed in #general any more): the
		// reason from Discord's error body, and the message kept to try again.
		s.rest.Must(t, http.StatusNoContent, "PUT", "/channels/"+general+"/permissions/"+g.ID, aliceToken,
			map[string]any{"type": 0, "allow": "0", "deny": "32768"}, nil) // ATTACH_FILES for @everyone
		bob.click(`#uploads [aria-label="Remove big.bin"]`)
		bob.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('composer-input').value = ''`))
		bob.chooseFiles("#attach", smallPath)
		// A reply to the big file's message: the reply is kept too.
		bob.do(5*time.Second, chromedp.Evaluate[chromedp.Void](row+`.querySelector('[aria-label="Reply"]').click()`))
		bob.waitFor("the reply bar", `!document.getElementById('composer-context').hidden`, 5*time.Second)
		bob.send("not allowed")
		bob.waitFor("the refusal, with the server's reason", `[...document.querySelectorAll('.toast')].some(e => e.textContent === 'Message not sent: Missing Permissions') &&
			[...document.querySelectorAll('.msg.pending.failed')].some(e => e.textContent.includes('not sent: Missing Permissions'))`, 10*time.Second)
		bob.waitFor("the message kept, a reply still", `document.getElementById('composer-input').value === 'not allowed' && `+chips+` === 'small.txt' &&
			!document.getElementById('composer-context').hidden && document.getElementById('composer-context-text').textContent.startsWith('Replying to ' + `+jsString(bobName)+`)`, 5*time.Second)
		// Allowed again: Enter sends what was kept.
		s.rest.Must(t, http.StatusNoContent, "DELETE", "/channels/"+general+"/permissions/"+g.ID, aliceToken, nil, nil)
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#composer-input")))
		bob.key(kb.Enter)
		alice.waitFor("the kept message, sent as a reply", `[...document.querySelectorAll('.msg[data-id]')].some(e => e.dataset.id && e.querySelector('.content')?.textContent === 'not allowed' &&
			e.querySelector('.attachment.file a')?.textContent === 'small.txt' && e.querySelector('button.reply-to')?.textContent.endsWith('a big file'))`, 15*time.Second)
	})

	t.Run("a group DM from the DM list, live for everyone in it", func(t *testing.T) {
		bob.t = t
		alice := openPage(t, b, s, "alice's group", 1280, 800)
		alice.signIn(aliceToken)
		carol := openPage(t, b, s, "carol", 390, 844) // on a phone
		carol.signIn(carolToken)
		// Bob and Carol look at their DM lists before the group exists.
		bob.click("#home")
		bob.waitFor("bob's empty DM list", `document.getElementById('guild-name').textContent === 'Direct messages'`, 5*time.Second)
		carol.click("#open-nav")
		carol.waitFor("the drawer", drawerOpen, 5*time.Second)
		carol.click("#home")
		carol.waitFor("carol's empty DM list", `document.getElementById('guild-name').textContent === 'Direct messages' && !!document.querySelector('#channel-list .sidebar-note')`, 5*time.Second)

		alice.click("#home")
		alice.waitFor("the new group button", `!document.getElementById('new-group').hidden`, 5*time.Second)
		alice.do(5*time.Second, chromedp.Focus(chromedp.CSS("#new-group")))
		alice.key(kb.Enter)
		people := `[...document.querySelectorAll('#group-people li[data-user-id]')].map(e => e.dataset.name).sort().join(',')`
		want := []string{bobName, carolName}
		alice.waitFor("bob and carol offered", people+` === `+jsString(strings.Join(want, ",")), 10*time.Second)
		if eval[string](alice, `document.querySelector('.modal .primary').textContent + ' ' + document.querySelector('.modal .primary').disabled`) != "Create group true" {
			t.Fatal("the dialog's button is not a disabled \"Create group\" before anyone is picked")
		}
		namedControls(t, alice)
		// Carol by typing her name and Enter; Bob with Tab and Space.
		alice.do(5*time.Second, chromedp.KeyEvent(carolName))
		alice.key(kb.Enter)
		alice.waitFor("carol picked", fmt.Sprintf(`document.querySelector('#group-people li[data-name=%s] input').checked`, jsString(carolName)), 5*time.Second)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`(() => { const f = document.getElementById('group-find'); f.value = ''; f.dispatchEvent(new Event('input')); })()`))
		alice.do(5*time.Second, chromedp.Focus(chromedp.CSS(fmt.Sprintf(`#group-people li[data-name=%s] input`, jsString(bobName)))))
		alice.key(" ")
		alice.waitFor("two picked", `document.querySelector('.modal .primary').textContent === 'Create group' && !document.querySelector('.modal .primary').disabled`, 5*time.Second)
		testenv.Screenshot(t, alice.ctx, shots, "web-group-dialog")
		alice.click(".modal .primary")
		alice.waitFor("the group, open", `!document.querySelector('.modal') && location.pathname.startsWith('/channels/@me/') && document.getElementById('channel-name').classList.contains('group')`, 10*time.Second)
		groupID := eval[string](alice, `location.pathname.split('/')[3]`)
		name := eval[string](alice, `document.getElementById('channel-name').textContent`)
		if !strings.Contains(name, bobName) || !strings.Contains(name, carolName) {
			t.Fatalf("the group is called %q; want the others' names", name)
		}
		group := fmt.Sprintf(`document.querySelector('.channel.dm.group[data-channel-id="%s"]')`, groupID)
		names := func(a, b string) string {
			return fmt.Sprintf(`(%s?.textContent.includes(%s) && %s?.textContent.includes(%s) && %s?.getAttribute('aria-label').includes('group of 3'))`, group, jsString(a), group, jsString(b), group)
		}
		// Live in the others' DM lists (CHANNEL_CREATE), without a reload.
		bob.waitFor("the group in bob's list", names(aliceName, carolName), 10*time.Second)
		carol.waitFor("the group in carol's list", names(aliceName, bobName), 10*time.Second)
		alice.send("hello group")
		carol.waitFor("the group unread", group+`?.classList.contains('unread')`, 10*time.Second)
		carol.click("#open-nav")
		carol.waitFor("the drawer", drawerOpen, 5*time.Second)
		carol.do(5*time.Second, chromedp.Evaluate[chromedp.Void](group+`.click()`))
		carol.waitFor("alice's message", hasContent("hello group"), 10*time.Second)
		carol.send("hi both")
		// The DM list is redrawn whole as unread marks change: click the button
		// found now, not one found a moment ago.
		bob.do(5*time.Second, chromedp.Evaluate[chromedp.Void](group+`.click()`))
		bob.waitFor("both messages", hasContent("hello group")+` && `+hasContent("hi both"), 10*time.Second)
		alice.waitFor("carol's answer", hasContent("hi both"), 10*time.Second)

		// The dialog on a phone, in both themes.
		carol.click("#open-nav")
		carol.waitFor("the drawer", drawerOpen+` && !document.getElementById('new-group').hidden && document.getElementById('new-group').getBoundingClientRect().right <= 390`, 5*time.Second)
		carol.click("#new-group")
		carol.waitFor("the dialog", `document.querySelectorAll('#group-people li[data-user-id]').length === 2`, 10*time.Second)
		for _, theme := range []struct{ scheme, bg string }{{"light", "rgb(255, 255, 255)"}, {"dark", "rgb(49, 51, 56)"}} {
			carol.colorScheme(theme.scheme)
			box := eval[map[string]any](carol, `(() => { const r = document.querySelector('.modal').getBoundingClientRect(); return {left: r.left, right: r.right, doc: document.documentElement.scrollWidth, bg: getComputedStyle(document.querySelector('.modal')).backgroundColor}; })()`)
			if box["left"].(float64) < 0 || box["right"].(float64) > 390 || box["doc"].(float64) > 390 || box["bg"] != theme.bg {
				t.Fatalf("the group dialog at phone width, %s theme: %v", theme.scheme, box)
			}
			testenv.Screenshot(t, carol.ctx, shots, "web-group-dialog-phone-"+theme.scheme)
		}
		namedControls(t, carol)
		carol.key(kb.Escape)
		carol.waitFor("the dialog closed", `!document.querySelector('.modal')`, 5*time.Second)

		// Carol leaves the group: it is gone from her list, and the others see a
		// group of two without a reload (CHANNEL_RECIPIENT_REMOVE).
		carol.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('scrim').hidden || document.getElementById('scrim').click()`))
		carol.waitFor("the leave button", `document.getElementById('channel-name').classList.contains('group') && !document.getElementById('leave-group').hidden`, 5*time.Second)
		carol.click("#leave-group")
		carol.waitFor("the confirmation", `document.querySelector('.modal .danger')?.textContent === 'Leave group'`, 5*time.Second)
		carol.click(".modal .danger")
		carol.waitFor("the group gone from her list", `!document.querySelector('.modal') && !`+group+` && document.getElementById('leave-group').hidden`, 10*time.Second)
		for _, p := range []*page{alice, bob} {
			p.waitFor("a group of two", fmt.Sprintf(`%s?.getAttribute('aria-label').includes('group of 2') && !%s?.textContent.includes(%s)`, group, group, jsString(carolName)), 10*time.Second)
		}
		alice.send("carol left")
		bob.waitFor("alice's message after carol left", hasContent("carol left"), 10*time.Second)
	})

	t.Run("the group dialog finds members of a large guild by name", func(t *testing.T) {
		// A guild past Discord's large_threshold sends no member list: the
		// dialog searches it as the name is typed.
		bigID, bigInvite := largeGuild(t, s, aliceToken, "Big")
		zedName := "zed" + randName()
		zedToken, _ := s.rest.Register(t, zedName)
		s.rest.Must(t, http.StatusOK, "POST", "/invites/"+bigInvite, zedToken, nil, nil)

		alice := openPage(t, b, s, "alice in a large guild", 1280, 800)
		alice.signIn(aliceToken)
		alice.waitFor("the large guild", fmt.Sprintf(`document.querySelector('.guild-button[data-guild-id="%s"]')`, bigID), 10*time.Second)
		alice.click("#home")
		alice.waitFor("the new group button", `!document.getElementById('new-group').hidden`, 5*time.Second)
		alice.click("#new-group")
		zed := fmt.Sprintf(`document.querySelector('#group-people li[data-name=%s] input')`, jsString(zedName))
		alice.waitFor("the small guild's members offered", fmt.Sprintf(`!!document.querySelector('#group-people li[data-name=%s]')`, jsString(bobName)), 10*time.Second)
		if eval[bool](alice, zed+` !== null`) {
			t.Fatal("zed is offered before anyone searched: the large guild's members should not be listed")
		}
		alice.do(5*time.Second, chromedp.KeyEvent("zed"))
		alice.waitFor("zed, found by the search", zed+` !== null`, 10*time.Second)
		alice.key(kb.Enter) // the only one shown
		alice.waitFor("zed picked", zed+`?.checked`, 5*time.Second)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`(() => { const f = document.getElementById('group-find'); f.value = ''; f.dispatchEvent(new Event('input')); })()`))
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector('#group-people li[data-name=%s] input').click()`, jsString(bobName))))
		alice.waitFor("two picked", `document.querySelector('.modal .primary').textContent === 'Create group' && !document.querySelector('.modal .primary').disabled`, 5*time.Second)
		alice.click(".modal .primary")
		alice.waitFor("the group, open", `!document.querySelector('.modal') && document.getElementById('channel-name').classList.contains('group')`, 10*time.Second)
		groupID := eval[string](alice, `location.pathname.split('/')[3]`)
		var zedDMs []struct {
			ID         string
			Type       int
			Recipients []struct{ Username string }
		}
		s.rest.Must(t, http.StatusOK, "GET", "/users/@me/channels", zedToken, nil, &zedDMs)
		var with []string
		for _, c := range zedDMs {
			if c.ID == groupID && c.Type == 3 {
				for _, r := range c.Recipients {
					with = append(with, r.Username)
				}
			}
		}
		if len(with) != 2 || !strings.Contains(strings.Join(with, ","), aliceName) || !strings.Contains(strings.Join(with, ","), bobName) {
			t.Fatalf("zed's group DM is with %v; want alice and bob", with)
		}
	})
}
