package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	ghnats "github.com/guildhall/guildhall/nats"
	"github.com/guildhall/guildhall/registry"
	"github.com/guildhall/guildhall/testenv"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// page is one browser tab (its own browser context: its own user) on the stack.
type page struct {
	t    *testing.T
	ctx  context.Context
	base string
	name string
}

func openPage(t *testing.T, b *testenv.Browser, s *stack, name string, width, height int) *page {
	t.Helper()
	p := &page{t: t, ctx: b.Page(t, width, height), base: "http://" + s.addr, name: name}
	// Any uncaught exception in the client fails the test.
	var mu sync.Mutex
	var thrown []string
	events := chromedp.Events(p.ctx, runtime.ExceptionThrown)
	go func() {
		for ev, err := range events {
			if err != nil {
				return
			}
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			mu.Lock()
			thrown = append(thrown, text)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range thrown {
			t.Errorf("%s: uncaught exception in the client: %s", name, e)
		}
	})
	return p
}

// colorScheme makes the page's prefers-color-scheme dark or light.
func (p *page) colorScheme(scheme string) {
	p.t.Helper()
	p.do(5*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	}))
}

// background is the computed background colour of the chat area.
func background(p *page) string {
	return eval[string](p, `getComputedStyle(document.getElementById('chat')).backgroundColor`)
}

// do runs steps with a timeout; a failure names the page.
func (p *page) do(timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

func (p *page) open(path string) {
	p.t.Helper()
	p.do(20*time.Second, chromedp.Navigate(p.base+path))
}

// eval evaluates a JavaScript expression (awaiting a promise) into T.
func eval[T any](p *page, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it is truthy.
func (p *page) waitFor(what, predicate string, timeout time.Duration) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, timeout+time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](predicate, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(25*time.Millisecond))); err != nil {
		state := eval[string](p, `document.getElementById('conn')?.dataset.state + ' / ' + (document.querySelector('.toast')?.textContent || '')`)
		testenv.Screenshot(p.t, p.ctx, p.t.TempDir(), "failed-"+p.name)
		p.t.Fatalf("%s: waiting for %s: %v (connection %s)", p.name, what, err, state)
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.do(10*time.Second, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// typeInto focuses the element and types text as key presses.
func (p *page) typeInto(sel, text string) {
	p.t.Helper()
	p.do(10*time.Second, chromedp.Focus(chromedp.CSS(sel), chromedp.NodeVisible), chromedp.KeyEvent(text))
}

func (p *page) key(k string, mods ...kb.Modifier) {
	p.t.Helper()
	p.do(5*time.Second, chromedp.KeyEvent(k, chromedp.KeyModifiers(mods...)))
}

// send types a message in the composer and presses Enter.
func (p *page) send(text string) {
	p.t.Helper()
	p.typeInto("#composer-input", text)
	p.key(kb.Enter)
}

func (p *page) register(username string) {
	p.t.Helper()
	p.waitFor("the log in form", `!document.getElementById('auth').hidden`, 10*time.Second)
	p.click("#auth-switch")
	p.typeInto("#auth-username", username)
	p.typeInto("#auth-password", "correct horse battery")
	p.key(kb.Enter)
	p.waitConn("connected", 15*time.Second)
}

func (p *page) waitConn(state string, timeout time.Duration) {
	p.t.Helper()
	p.waitFor("connection "+state, fmt.Sprintf(`document.getElementById('conn').dataset.state === %q`, state), timeout)
}

func (p *page) token() string {
	p.t.Helper()
	return eval[string](p, `localStorage.getItem('guildhall.token')`)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// messageCount is how many rows of the message list show message id (the list
// is virtualised: only rows near the viewport exist, so look at the bottom).
func messageCount(p *page, id string) int {
	return eval[int](p, fmt.Sprintf(`document.querySelectorAll('.msg[data-id=%s]').length`, jsString(id)))
}

// listSize is how many rows the message list holds in all (aria-setsize: the
// start marker or loading row, and every message).
func listSize(p *page) int {
	return eval[int](p, `Number(document.querySelector('#messages .vlist-row')?.getAttribute('aria-setsize') || 0)`)
}

func hasContent(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('.msg .content')].some(e => e.textContent.startsWith(%s))`, jsString(text))
}

func screenshotDir(t *testing.T) string {
	if d := os.Getenv(testenv.EnvScreenshots); d != "" {
		return t.TempDir() // Screenshot copies there too
	}
	return t.TempDir()
}

// The web client in two real browsers against the real server: register, create a
// guild, invite by link, messages both ways live, typing, the keyboard, history
// back to the first message, a server-side close resumed with nothing missed or
// doubled, a lost session re-identified, the phone layout, logout.
func TestWebClient(t *testing.T) {
	dir := t.TempDir()
	s := startStack(t, dir)
	b := testenv.StartBrowser(t)
	shots := screenshotDir(t)

	// The page is served at / (and the gateway still answers upgrades there).
	resp, err := http.Get("http://" + s.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s; want the client's page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}

	alice := openPage(t, b, s, "alice", 1280, 800)
	alice.open("/")
	aliceName := "alice" + randName()
	alice.register(aliceName)
	// A new user has no guild: the client offers to create one.
	alice.waitFor("the welcome screen", `document.getElementById('empty').textContent.includes('Create a server')`, 10*time.Second)
	alice.click("#add-guild")
	alice.waitFor("the create dialog", `document.querySelector('.modal input')`, 5*time.Second)
	alice.do(5*time.Second, chromedp.SetValue(chromedp.CSS(".modal input"), "Web Test Guild"))
	alice.key(kb.Enter)
	alice.waitFor("the new guild's channel", `document.querySelector('.channel[aria-current="true"]') && document.getElementById('guild-name').textContent === 'Web Test Guild'`, 10*time.Second)
	aliceToken := alice.token()
	var me struct{ ID string }
	s.rest.Must(t, http.StatusOK, "GET", "/users/@me", aliceToken, nil, &me)
	guildID := eval[string](alice, `document.querySelector('.guild-button[aria-current="true"]').dataset.guildId`)
	generalID := eval[string](alice, `document.querySelector('.channel[aria-current="true"]').dataset.channelId`)

	// An invite link, made in the client, opens the client on the invite.
	alice.click("#invite-people")
	alice.waitFor("the invite link", `document.getElementById('invite-link')?.value.includes('/invite/')`, 10*time.Second)
	link := eval[string](alice, `document.getElementById('invite-link').value`)
	alice.key(kb.Escape)
	if !strings.HasPrefix(link, "http://"+s.addr+"/invite/") {
		t.Fatalf("invite link %q", link)
	}

	bob := openPage(t, b, s, "bob", 1280, 800)
	bob.open(strings.TrimPrefix(link, "http://"+s.addr))
	bob.waitFor("the invite notice", `!document.getElementById('auth-invite').hidden`, 10*time.Second)
	bobName := "bob" + randName()
	bob.register(bobName)
	bob.waitFor("the invite dialog", `document.querySelector('.modal button.primary')?.textContent === 'Accept invite'`, 10*time.Second)
	bob.click(".modal button.primary")
	bob.waitFor("the joined guild", `document.getElementById('guild-name').textContent === 'Web Test Guild' && document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === `+jsString(generalID), 15*time.Second)
	if p, want := eval[string](bob, `location.pathname`), "/channels/"+guildID+"/"+generalID; p != want {
		t.Errorf("after accepting, the page is at %s; want %s", p, want)
	}
	bobToken := bob.token()
	// Alice's member list shows Bob (small guild: members with presence).
	alice.waitFor("bob in the member list", fmt.Sprintf(`document.getElementById('members').textContent.includes(%s)`, jsString(bobName)), 15*time.Second)

	t.Run("live messages, typing and the keyboard", func(t *testing.T) {
		alice.t, bob.t = t, t
		alice.send("hello from alice")
		bob.waitFor("alice's message", hasContent("hello from alice"), 10*time.Second)

		// Typing shows on the other side, and ends with the message.
		bob.typeInto("#composer-input", "hi alice")
		alice.waitFor("bob typing", fmt.Sprintf(`document.getElementById('typing').textContent === %s`, jsString(bobName+" is typing…")), 10*time.Second)
		bob.key(kb.Enter)
		alice.waitFor("bob's message", hasContent("hi alice"), 10*time.Second)
		alice.waitFor("typing to end", `document.getElementById('typing').textContent === ''`, 5*time.Second)

		// Shift+Enter is a new line; Enter sends.
		alice.typeInto("#composer-input", "line one")
		alice.key(kb.Enter, kb.ModifierShift)
		alice.typeInto("#composer-input", "line two")
		if v := eval[string](alice, `document.getElementById('composer-input').value`); v != "line one\nline two" {
			t.Fatalf("composer after Shift+Enter = %q", v)
		}
		alice.key(kb.Enter)
		bob.waitFor("the two-line message", hasContent("line one\nline two"), 10*time.Second)

		// Up edits the last own message; Escape cancels; Enter saves. Up edits only
		// confirmed messages (a pending one has no id yet), and Bob's copy can arrive
		// before Alice's own confirmation (her post's answer or her MESSAGE_CREATE):
		// wait for hers, or Up picks her previous message.
		alice.waitFor("an empty composer", `document.getElementById('composer-input').value === ''`, 5*time.Second)
		alice.waitFor("her two-line message, confirmed", `[...document.querySelectorAll('.msg')].some(e => e.dataset.id && e.textContent.includes('line two'))`, 10*time.Second)
		alice.do(5*time.Second, chromedp.Focus(chromedp.CSS("#composer-input")))
		alice.key(kb.ArrowUp)
		alice.waitFor("edit mode", `!document.getElementById('composer-context').hidden && document.getElementById('composer-input').value === 'line one\nline two'`, 5*time.Second)
		alice.key(kb.Escape)
		alice.waitFor("edit cancelled", `document.getElementById('composer-context').hidden && document.getElementById('composer-input').value === ''`, 5*time.Second)
		alice.key(kb.ArrowUp)
		alice.waitFor("edit mode again", `!document.getElementById('composer-context').hidden`, 5*time.Second)
		alice.key("a", kb.ModifierCtrl)
		alice.typeInto("#composer-input", "edited by alice")
		alice.key(kb.Enter)
		bob.waitFor("the edit", `[...document.querySelectorAll('.msg .content')].some(e => e.textContent === 'edited by alice(edited)')`, 10*time.Second)

		// Delete asks first, then the message is gone on both sides.
		alice.send("to be deleted")
		bob.waitFor("the message to delete", hasContent("to be deleted"), 10*time.Second)
		alice.waitFor("the sent message", `[...document.querySelectorAll('.msg')].some(e => e.dataset.id && e.textContent.includes('to be deleted'))`, 10*time.Second)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('.msg')].find(e => e.textContent.includes('to be deleted')).querySelector('[aria-label="Delete message"]').click()`))
		alice.waitFor("the confirmation", `document.querySelector('.modal button.danger')`, 5*time.Second)
		alice.click(".modal button.danger")
		bob.waitFor("the message to disappear", "!"+hasContent("to be deleted"), 10*time.Second)
		alice.waitFor("the message to disappear", "!"+hasContent("to be deleted"), 10*time.Second)

		// Each message offers a reaction and a reply; her own also edit and delete.
		alice.waitFor("reaction, reply, edit and delete actions", `(() => {
			const n = (label) => document.querySelectorAll('.msg .actions [aria-label="' + label + '"]').length;
			return n('Add reaction') > 0 && n('Reply') > 0 && n('Edit message') > 0 && n('Delete message') > 0;
		})()`, 10*time.Second)

		// A category and a channel in it, made in the client.
		alice.click("#create-channel")
		alice.waitFor("the channel dialog", `document.querySelector('.modal select')`, 5*time.Second)
		alice.do(5*time.Second, chromedp.SetValue(chromedp.CSS(".modal input"), "Projects"), chromedp.SetValue(chromedp.CSS(".modal select"), "4"))
		alice.click(".modal button.primary")
		alice.waitFor("the category", `[...document.querySelectorAll('.channel-category')].some(e => e.textContent === 'Projects')`, 10*time.Second)
		alice.click("#create-channel")
		alice.waitFor("the channel dialog", `document.querySelectorAll('.modal select').length === 2`, 5*time.Second)
		alice.do(5*time.Second, chromedp.SetValue(chromedp.CSS(".modal input"), "Road Map"),
			chromedp.Evaluate[chromedp.Void](`(() => { const s = document.querySelectorAll('.modal select')[1]; s.value = s.options[1].value; })()`))
		alice.click(".modal button.primary")
		alice.waitFor("the new channel, opened", `document.querySelector('.channel[aria-current="true"]')?.textContent.includes('road-map') && document.getElementById('channel-name').textContent === 'road-map'`, 10*time.Second)
		bob.waitFor("the new channel under its category", `(() => {
			const h = [...document.querySelectorAll('.channel-category')].find(e => e.textContent === 'Projects');
			return h && h.nextElementSibling && h.nextElementSibling.textContent.includes('road-map');
		})()`, 10*time.Second)
		alice.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, generalID))

		// The arrow keys walk the messages; a focused message shows its actions
		// and Tab reaches them.
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#messages")))
		bob.key(kb.ArrowUp)
		bob.waitFor("the last message focused", `document.activeElement.classList.contains('msg') && getComputedStyle(document.activeElement.querySelector('.actions')).display !== 'none'`, 5*time.Second)
		last := eval[string](bob, `document.activeElement.dataset.id`)
		bob.key(kb.ArrowUp)
		bob.waitFor("the message before", fmt.Sprintf(`document.activeElement.classList.contains('msg') && document.activeElement.dataset.id !== %s`, jsString(last)), 5*time.Second)
		bob.key(kb.Tab)
		if label := eval[string](bob, `document.activeElement.closest('.actions') ? document.activeElement.getAttribute('aria-label') : ''`); label == "" {
			t.Fatalf("Tab from a focused message went to %s; want one of its actions", eval[string](bob, `document.activeElement.outerHTML.slice(0, 80)`))
		}
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#composer-input")))

		// Every control has an accessible name.
		for _, p := range []*page{alice, bob} {
			unnamed := eval[[]string](p, `[...document.querySelectorAll('button, input, textarea, select')].filter(e => e.offsetParent !== null).filter(e => {
				const named = (e.getAttribute('aria-label') || '').trim() || (e.labels && [...e.labels].some(l => l.textContent.trim())) || (e.tagName === 'BUTTON' && e.textContent.trim());
				return !named;
			}).map(e => e.outerHTML.slice(0, 80))`)
			if len(unnamed) > 0 {
				t.Errorf("%s: controls without an accessible name: %v", p.name, unnamed)
			}
		}
	})

	var historyID string
	t.Run("history scrolls back to the first message", func(t *testing.T) {
		alice.t, bob.t = t, t
		var ch struct{ ID string }
		s.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+guildID+"/channels", aliceToken, map[string]any{"name": "history", "type": 0}, &ch)
		historyID = ch.ID
		const n = 300
		for i := range n {
			s.post(t, aliceToken, ch.ID, fmt.Sprintf("seed %03d", i))
		}
		bob.waitFor("the new channel", fmt.Sprintf(`document.querySelector('.channel[data-channel-id="%s"]')`, ch.ID), 10*time.Second)
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, ch.ID))
		bob.waitFor("the newest message", hasContent(fmt.Sprintf("seed %03d", n-1)), 10*time.Second)
		// Scroll up as a reader would until the channel's start shows.
		bob.waitFor("the start of the channel", `(() => {
			const m = document.getElementById('messages');
			if (document.querySelector('.history-start')) return true;
			m.scrollTop = 0;
			m.dispatchEvent(new Event('scroll'));
			return false;
		})()`, 30*time.Second)
		if got := listSize(bob); got != n+1 {
			t.Fatalf("the list holds %d rows; want %d messages and the start", got, n+1)
		}
		// The rows at the top are the first messages, in order.
		top := eval[[]string](bob, `[...document.querySelectorAll('#messages .msg')]
			.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top)
			.slice(0, 5).map(e => e.querySelector('.content').textContent)`)
		if strings.Join(top, ",") != "seed 000,seed 001,seed 002,seed 003,seed 004" {
			t.Fatalf("top of the channel shows %v", top)
		}
		// Away from the newest messages the client offers to jump back; Escape does.
		bob.waitFor("the jump button", `!document.getElementById('jump').hidden`, 5*time.Second)
		testenv.Screenshot(t, bob.ctx, shots, "web-history-start")
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#messages")))
		bob.key(kb.Escape)
		bob.waitFor("the newest message again", hasContent(fmt.Sprintf("seed %03d", n-1))+` && document.getElementById('jump').hidden`, 5*time.Second)
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, generalID))
	})

	// The server's own close: the gateway closes alice's session as when another
	// gateway takes it over (the kick subject), then a message is posted while
	// she is away.
	nc, _ := connectNATS(t, dir, ghnats.RoleGateway) // kicks, as gateways do
	defer nc.Close()
	onc, js := connectNATS(t, dir, ghnats.RoleOperator) // lists the sessions bucket
	defer onc.Close()
	kv, err := js.KeyValue(context.Background(), ghnats.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	session := func(t *testing.T) registry.Session {
		t.Helper()
		var found registry.Session
		testenv.Eventually(t, 10*time.Second, func() error {
			keys, err := kv.ListKeys(context.Background())
			if err != nil {
				return err
			}
			for k := range keys.Keys() {
				e, err := kv.Get(context.Background(), k)
				if err != nil {
					continue
				}
				var s registry.Session
				if json.Unmarshal(e.Value(), &s) == nil && s.UserID.String() == me.ID {
					found = s
					return nil
				}
			}
			return fmt.Errorf("no session of alice in the registry")
		})
		return found
	}
	kick := func(t *testing.T, sess registry.Session) {
		t.Helper()
		if err := nc.Publish(ghnats.KickSubject(sess.Node), []byte(sess.ID)); err != nil {
			t.Fatal(err)
		}
		alice.waitConn("reconnecting", 10*time.Second)
	}

	t.Run("server closes the socket and the client resumes", func(t *testing.T) {
		alice.t, bob.t = t, t
		alice.waitFor("the general channel", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s`, jsString(generalID)), 5*time.Second)
		before := listSize(alice)
		kick(t, session(t))
		m := s.post(t, bobToken, generalID, "posted during the drop")
		if st := eval[string](alice, `document.getElementById('conn').dataset.state`); st != "reconnecting" {
			t.Fatalf("alice was %s when the message was posted; the test needs her away", st)
		}
		alice.waitConn("resumed", 15*time.Second)
		alice.waitFor("the message posted during the drop", hasContent("posted during the drop"), 10*time.Second)
		time.Sleep(300 * time.Millisecond) // a duplicate would arrive with the replay
		if got := messageCount(alice, m.ID); got != 1 {
			t.Fatalf("the message posted during the drop shows %d times; want 1", got)
		}
		if got := listSize(alice); got != before+1 {
			t.Fatalf("the list grew from %d to %d rows; want one more", before, got)
		}
		// Live again.
		bob.send("after the resume")
		alice.waitFor("a live message after the resume", hasContent("after the resume"), 10*time.Second)
	})

	t.Run("a lost session is re-identified without losing a message", func(t *testing.T) {
		alice.t, bob.t = t, t
		before := listSize(alice)
		sess := session(t)
		// The registry forgets the session, so the resume is refused
		// (INVALID_SESSION) and the client identifies again.
		if err := kv.Delete(context.Background(), sess.ID); err != nil {
			t.Fatal(err)
		}
		kick(t, sess)
		m := s.post(t, bobToken, generalID, "posted between sessions")
		alice.waitFor("a new session", `document.getElementById('conn').dataset.state === 'connected' && document.getElementById('conn').dataset.how === 're-identified'`, 20*time.Second)
		alice.waitFor("the message posted between sessions", hasContent("posted between sessions"), 10*time.Second)
		time.Sleep(300 * time.Millisecond)
		if got := messageCount(alice, m.ID); got != 1 {
			t.Fatalf("the message posted between sessions shows %d times; want 1", got)
		}
		if got := listSize(alice); got != before+1 {
			t.Fatalf("the list grew from %d to %d rows; want one more", before, got)
		}
		bob.send("after the new session")
		alice.waitFor("a live message in the new session", hasContent("after the new session"), 10*time.Second)
	})

	t.Run("phone width", func(t *testing.T) {
		phone := openPage(t, b, s, "phone", 390, 844)
		phone.open("/")
		phone.do(5*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem('guildhall.token', %s)`, jsString(bobToken))))
		// A deep link opens its channel.
		phone.open("/channels/" + guildID + "/" + historyID)
		phone.waitConn("connected", 15*time.Second)
		phone.waitFor("the linked channel", hasContent("seed 299"), 15*time.Second)
		phone.open("/channels/" + guildID + "/" + generalID)
		phone.waitFor("the channel", hasContent("after the new session"), 15*time.Second)
		// One column: the composer spans the screen, the guild rail and channels
		// are off screen, and nothing scrolls sideways.
		layout := eval[map[string]float64](phone, `(() => {
			const r = (id) => document.getElementById(id).getBoundingClientRect();
			return {width: innerWidth, doc: document.documentElement.scrollWidth, composerLeft: r('composer').left, composerRight: r('composer').right,
				sidebarRight: r('sidebar').right, railRight: r('rail').right, menu: r('open-nav').width, composerHeight: r('composer').height};
		})()`)
		if layout["width"] != 390 || layout["doc"] > 390 || layout["composerRight"] > 390 || layout["composerLeft"] > 16 ||
			layout["sidebarRight"] > 0 || layout["railRight"] > 0 || layout["menu"] == 0 || layout["composerHeight"] > 80 {
			t.Fatalf("phone layout: %v", layout)
		}
		testenv.Screenshot(t, phone.ctx, shots, "web-phone")
		// The menu opens servers and channels; picking a channel closes it.
		phone.click("#open-nav")
		phone.waitFor("the open drawer", `document.getElementById('sidebar').getBoundingClientRect().left >= 0 && document.getElementById('rail').getBoundingClientRect().left >= 0`, 5*time.Second)
		testenv.Screenshot(t, phone.ctx, shots, "web-phone-channels")
		phone.click(`.channel[aria-current="true"]`)
		phone.waitFor("the drawer to close", `document.getElementById('sidebar').getBoundingClientRect().right <= 0`, 5*time.Second)
	})

	t.Run("dark and light themes", func(t *testing.T) {
		alice.t, bob.t = t, t
		const dark, light = "rgb(49, 51, 56)", "rgb(255, 255, 255)"
		alice.colorScheme("dark")
		if got := background(alice); got != dark {
			t.Fatalf("system dark: background %s; want %s", got, dark)
		}
		alice.colorScheme("light")
		if got := background(alice); got != light {
			t.Fatalf("system light: background %s; want %s", got, light)
		}
		// The toggle overrides the system: system → light → dark → system.
		alice.colorScheme("dark")
		for _, want := range []struct{ theme, bg string }{{"light", light}, {"dark", dark}, {"", dark}} {
			alice.click("#theme-toggle")
			got := eval[string](alice, `(document.documentElement.dataset.theme || '') + ' ' + (localStorage.getItem('guildhall.theme') || '')`)
			stored := want.theme
			if stored == "" {
				stored = "system"
			}
			if got != want.theme+" "+stored {
				t.Fatalf("theme after toggle = %q; want %q", got, want.theme+" "+stored)
			}
			if bg := background(alice); bg != want.bg {
				t.Fatalf("theme %q: background %s; want %s", want.theme, bg, want.bg)
			}
		}
	})

	t.Run("unread marks", func(t *testing.T) {
		alice.t, bob.t = t, t
		unread := fmt.Sprintf(`document.querySelector('.channel[data-channel-id="%s"]').classList.contains('unread')`, historyID)
		if eval[bool](bob, unread) {
			t.Fatal("#history is unread before anything new was posted")
		}
		s.post(t, aliceToken, historyID, "something new in history")
		bob.waitFor("#history marked unread", unread, 10*time.Second)
		// The desktop screenshot for the README: dark, a conversation, an unread channel.
		bob.colorScheme("dark")
		bob.do(5*time.Second, chromedp.Focus(chromedp.CSS("#composer-input")))
		time.Sleep(300 * time.Millisecond) // let the rail's colour transitions end
		testenv.Screenshot(t, bob.ctx, shots, "web-desktop")
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, historyID))
		bob.waitFor("the new message", hasContent("something new in history"), 10*time.Second)
		bob.waitFor("#history read", "!"+unread, 5*time.Second)
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, generalID))
	})

	t.Run("a large guild shows counts, not a member list", func(t *testing.T) {
		bob.t = t
		bigID, _ := largeGuild(t, s, bobToken, "Big Guild")
		bob.click(fmt.Sprintf(`.guild-button[data-guild-id="%s"]`, bigID))
		bob.waitFor("the member count", `document.querySelector('#members .member-counts')?.textContent.includes('252members')`, 15*time.Second)
		if n := eval[int](bob, `document.querySelectorAll('#members .member').length`); n != 0 {
			t.Fatalf("a large guild lists %d members; want counts only", n)
		}
		bob.click(fmt.Sprintf(`.guild-button[data-guild-id="%s"]`, guildID))
	})

	t.Run("the client's message log orders by snowflake and keeps each id once", func(t *testing.T) {
		bob.t = t
		// The store's own module, run in the page: live events, a replay and
		// overlapping history pages arriving in any order.
		got := eval[string](bob, `(async () => {
			const { ChannelLog } = await import('/assets/js/store.js');
			const log = new ChannelLog('1');
			const m = (id) => ({ id, author: { id: '7' }, content: 'm' + id });
			log.upsert(m('1000000000000000005'));
			log.upsert(m('999999999999999999'));           // shorter id: older
			log.merge([m('1000000000000000007'), m('1000000000000000006'), m('1000000000000000005')]);
			log.upsert(m('1000000000000000006'));         // replayed after a resume
			log.merge([m('999999999999999998'), m('999999999999999999')]);
			log.pending.push({ nonce: '42' });
			log.upsert({ ...m('1000000000000000008'), nonce: '42' }); // our own send confirmed
			return log.items.map((x) => x.id).join(',') + ' pending=' + log.pending.length + ' ids=' + log.byId.size;
		})()`)
		want := "999999999999999998,999999999999999999,1000000000000000005,1000000000000000006,1000000000000000007,1000000000000000008 pending=0 ids=6"
		if got != want {
			t.Fatalf("log = %s\nwant  %s", got, want)
		}
	})

	t.Run("logout ends the session", func(t *testing.T) {
		alice.t = t
		sess := session(t)
		alice.click("#logout")
		alice.waitFor("the log in form", `!document.getElementById('auth').hidden && document.getElementById('shell').hidden`, 10*time.Second)
		if tok := eval[string](alice, `localStorage.getItem('guildhall.token') || ''`); tok != "" {
			t.Fatalf("token still stored after logout")
		}
		// The client closed with 1000: the session cannot be resumed.
		testenv.Eventually(t, 10*time.Second, func() error {
			if _, err := kv.Get(context.Background(), sess.ID); err == nil {
				return fmt.Errorf("session %s still in the registry", sess.ID)
			}
			return nil
		})

		// A wrong password is refused with the server's reason; the right one logs in.
		if mode := eval[string](alice, `document.getElementById('auth-submit').textContent`); mode != "Log in" {
			t.Fatalf("after logout the form offers %q; want Log in", mode)
		}
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('auth-username').value = ''; document.getElementById('auth-password').value = ''`))
		alice.typeInto("#auth-username", aliceName)
		alice.typeInto("#auth-password", "not the password")
		alice.key(kb.Enter)
		alice.waitFor("the refusal", `document.getElementById('auth-error').textContent !== ''`, 10*time.Second)
		if !eval[bool](alice, `document.getElementById('shell').hidden`) {
			t.Fatal("a wrong password opened the chat")
		}
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`document.getElementById('auth-password').value = ''`))
		alice.typeInto("#auth-password", "correct horse battery")
		alice.key(kb.Enter)
		alice.waitConn("connected", 15*time.Second)
		alice.waitFor("her guild", `document.getElementById('guild-name').textContent === 'Web Test Guild'`, 10*time.Second)
	})
}

// signIn opens the client in p already logged in with token (as a reload of a
// browser that logged in before).
func (p *page) signIn(token string) {
	p.t.Helper()
	p.open("/")
	p.do(5*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem('guildhall.token', %s)`, jsString(token))))
	p.open("/")
	p.waitConn("connected", 15*time.Second)
}

// chooseFiles clicks the button sel, answers the file chooser it opens with
// paths, as a user picking files would.
func (p *page) chooseFiles(sel string, paths ...string) {
	p.t.Helper()
	p.do(5*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, cdppage.SetInterceptFileChooserDialog, cdppage.SetInterceptFileChooserDialogParams{Enabled: true})
		return err
	}))
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	opened := make(chan cdppage.EventFileChooserOpened, 1)
	go func() {
		for ev, err := range chromedp.Events(ctx, cdppage.FileChooserOpened) {
			if err == nil {
				opened <- ev
			}
			return
		}
	}()
	p.click(sel)
	select {
	case ev := <-opened:
		p.do(5*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, dom.SetFileInputFiles, dom.SetFileInputFilesParams{Files: paths, BackendNodeID: ev.BackendNodeID})
			return err
		}))
	case <-ctx.Done():
		p.t.Fatalf("%s: clicking %s opened no file chooser", p.name, sel)
	}
}

// namedControls fails the test for any visible control without an accessible name.
func namedControls(t *testing.T, p *page) {
	t.Helper()
	unnamed := eval[[]string](p, `[...document.querySelectorAll('button, input, textarea, select')].filter(e => e.offsetParent !== null).filter(e => {
		const named = (e.getAttribute('aria-label') || '').trim() || (e.labels && [...e.labels].some(l => l.textContent.trim())) || (e.tagName === 'BUTTON' && e.textContent.trim());
		return !named;
	}).map(e => e.outerHTML.slice(0, 80))`)
	if len(unnamed) > 0 {
		t.Errorf("%s: controls without an accessible name: %v", p.name, unnamed)
	}
}

// msgRow is a JavaScript expression for the drawn row of message id (or null).
func msgRow(id string) string {
	return fmt.Sprintf(`document.querySelector('.msg[data-id=%s]')`, jsString(id))
}

// TestWebConversations drives what the client does with the server's
// conversations, two users in two browsers (and one of them in a second
// browser): replies and the quote that shows the original, reactions counted
// live, unread marks and mention counts from the server's read states, direct
// messages opened from the member list, files from the button, a drop and a
// paste, shown as an image and as links with their size.
func TestWebConversations(t *testing.T) {
	s := startStack(t, t.TempDir())
	b := testenv.StartBrowser(t)
	shots := screenshotDir(t)

	aliceName, bobName := "alice"+randName(), "bob"+randName()
	aliceToken, _ := s.rest.Register(t, aliceName)
	bobToken, bobID := s.rest.Register(t, bobName)
	var g struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds", aliceToken, map[string]string{"name": "Conversations"}, &g)
	var chans []struct{ ID string }
	s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", aliceToken, nil, &chans)
	general := chans[0].ID
	var other struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", aliceToken, map[string]any{"name": "other", "type": 0}, &other)
	var inv struct{ Code string }
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+general+"/invites", aliceToken, map[string]any{}, &inv)
	s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, bobToken, nil, nil)
	// Bob read #other before (the server keeps read states of acked channels):
	// nothing is unread when he opens the client.
	welcome := s.post(t, aliceToken, other.ID, "welcome to #other")
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+other.ID+"/messages/"+welcome.ID+"/ack", bobToken, map[string]any{}, nil)
	question := s.post(t, bobToken, general, "the original question")

	alice := openPage(t, b, s, "alice", 1280, 800)
	alice.signIn(aliceToken)
	bob := openPage(t, b, s, "bob", 1280, 800)
	bob.signIn(bobToken)
	for _, p := range []*page{alice, bob} {
		p.waitFor("#general", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s`, jsString(general)), 10*time.Second)
		p.waitFor("bob's question", msgRow(question.ID), 10*time.Second)
	}
	// The hacky probe is gone: opening a channel posts nothing.
	if got := eval[int](alice, `performance.getEntriesByType('resource').filter(e => e.initiatorType === 'fetch' && /\/messages$/.test(e.name)).length`); got != 0 {
		t.Errorf("alice's client made %d bare requests to …/messages while only reading", got)
	}

	t.Run("replies", func(t *testing.T) {
		alice.t, bob.t = t, t
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](msgRow(question.ID)+`.querySelector('[aria-label="Reply"]').click()`))
		alice.waitFor("the reply bar", fmt.Sprintf(`!document.getElementById('composer-context').hidden && document.getElementById('composer-context-text').textContent.includes(%s)`, jsString("Replying to "+bobName)), 5*time.Second)
		alice.send("the answer")
		// Both see the reply with the quoted line above it.
		quoted := fmt.Sprintf(`(() => {
			const row = [...document.querySelectorAll('.msg[data-id]')].find(e => e.dataset.id && e.querySelector('.content')?.textContent === 'the answer');
			const q = row && row.querySelector('button.reply-to');
			return !!q && q.textContent === %s + 'the original question' && q.dataset.refId === %s;
		})()`, jsString(bobName), jsString(question.ID))
		bob.waitFor("alice's reply, quoting the question", quoted, 10*time.Second)
		alice.waitFor("her reply, quoting the question", quoted, 10*time.Second)

		// A reply to a message far back: the quote pages back to it and shows it.
		old := s.post(t, aliceToken, general, "a message from long ago")
		for i := range 160 {
			s.post(t, aliceToken, general, fmt.Sprintf("filler %03d", i))
		}
		var late message
		s.rest.Must(t, http.StatusOK, "POST", "/channels/"+general+"/messages", aliceToken,
			map[string]any{"content": "about that old message", "message_reference": map[string]string{"message_id": old.ID}}, &late)
		bob.waitFor("the late reply", msgRow(late.ID), 10*time.Second)
		// A reload: the client holds the newest pages only, not the old message
		// (the 162nd newest).
		bob.open("/")
		bob.waitConn("connected", 15*time.Second)
		bob.waitFor("the late reply", msgRow(late.ID), 10*time.Second)
		if n := listSize(bob); n-1 >= 162 || eval[bool](bob, msgRow(old.ID)+` !== null`) {
			t.Fatalf("the client holds %d rows, the old message among them; the test needs it far away", n)
		}
		bob.click(fmt.Sprintf(`.msg[data-id="%s"] button.reply-to`, late.ID))
		bob.waitFor("the original, in view and marked", fmt.Sprintf(`(() => {
			const row = %s;
			if (!row || !row.classList.contains('highlight')) return false;
			const r = row.getBoundingClientRect(), m = document.getElementById('messages').getBoundingClientRect();
			return r.top >= m.top && r.bottom <= m.bottom;
		})()`, msgRow(old.ID)), 15*time.Second)
		bob.waitFor("the jump button", `!document.getElementById('jump').hidden`, 5*time.Second)
		bob.click("#jump")
		bob.waitFor("the newest again", msgRow(late.ID), 5*time.Second)
	})

	t.Run("reactions", func(t *testing.T) {
		alice.t, bob.t = t, t
		// The question is far up now: a fresh one to react to.
		m := s.post(t, bobToken, general, "react to this")
		alice.waitFor("the message", msgRow(m.ID), 10*time.Second)
		bob.waitFor("the message", msgRow(m.ID), 10*time.Second)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](msgRow(m.ID)+`.querySelector('[aria-label="Add reaction"]').click()`))
		alice.waitFor("the picker", `document.activeElement?.closest('.emoji-picker') !== null`, 5*time.Second)
		// A message arriving meanwhile scrolls the list; the picker stays open.
		next := s.post(t, bobToken, general, "meanwhile")
		alice.waitFor("the next message", msgRow(next.ID), 10*time.Second)
		alice.waitFor("the picker, still open", `document.activeElement?.closest('.emoji-picker') !== null`, time.Second)
		alice.click(`.emoji-picker [aria-label="React with 👍"]`)
		reaction := func(emoji string) string {
			return fmt.Sprintf(`[...(%s?.querySelectorAll('.reaction') || [])].find(e => e.textContent.startsWith(%s))`, msgRow(m.ID), jsString(emoji))
		}
		shows := func(emoji string, count int, mine bool) string {
			return fmt.Sprintf(`(() => { const r = %s; return !!r && r.textContent === %s && r.getAttribute('aria-pressed') === %q; })()`,
				reaction(emoji), jsString(fmt.Sprint(emoji, count)), fmt.Sprint(mine))
		}
		alice.waitFor("her 👍", shows("👍", 1, true), 10*time.Second)
		bob.waitFor("alice's 👍, live", shows("👍", 1, false), 10*time.Second)
		// Bob adds his by clicking it; alice takes hers back.
		bob.do(5*time.Second, chromedp.Evaluate[chromedp.Void](reaction("👍")+`.click()`))
		bob.waitFor("two 👍, one his", shows("👍", 2, true), 10*time.Second)
		alice.waitFor("two 👍", shows("👍", 2, true), 10*time.Second)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](reaction("👍")+`.click()`))
		alice.waitFor("one 👍, not hers", shows("👍", 1, false), 10*time.Second)
		bob.waitFor("one 👍, his", shows("👍", 1, true), 10*time.Second)
		// Another emoji from the picker, with the keyboard.
		bob.do(5*time.Second, chromedp.Evaluate[chromedp.Void](msgRow(m.ID)+`.querySelector('[aria-label="Add reaction"]').click()`))
		bob.waitFor("the picker", `document.activeElement?.closest('.emoji-picker') !== null`, 5*time.Second)
		bob.key(kb.ArrowRight) // from 👍 to ❤️
		bob.key(kb.Enter)
		alice.waitFor("bob's ❤️", shows("❤️", 1, false), 10*time.Second)
		bob.waitFor("his ❤️", shows("❤️", 1, true), 10*time.Second)
		testenv.Screenshot(t, alice.ctx, shots, "web-replies-reactions")
	})

	t.Run("unread marks and mentions come from the server's read states", func(t *testing.T) {
		alice.t, bob.t = t, t
		// Bob in a second browser: nothing of the first one's storage.
		bob2 := openPage(t, b, s, "bob's other browser", 1280, 800)
		bob2.signIn(bobToken)
		channel := fmt.Sprintf(`document.querySelector('.channel[data-channel-id="%s"]')`, other.ID)
		unread := channel + `?.classList.contains('unread')`
		mentions := channel + `?.querySelector('.badge')?.textContent || ''`
		bob2.waitFor("#other", channel, 10*time.Second)
		if eval[bool](bob2, unread) {
			t.Fatal("#other is unread before anything was posted")
		}
		s.post(t, aliceToken, other.ID, "<@"+bobID+"> have a look")
		s.post(t, aliceToken, other.ID, "no mention here")
		for _, p := range []*page{bob, bob2} {
			p.waitFor("#other unread with one mention", unread+` && (`+mentions+`) === '1'`, 10*time.Second)
		}
		// A reload starts from READY: the server's read state and mention count.
		bob2.open("/")
		bob2.waitConn("connected", 15*time.Second)
		bob2.waitFor("#other still unread with one mention", unread+` && (`+mentions+`) === '1'`, 10*time.Second)
		if n := eval[int](bob2, `Object.keys(localStorage).filter(k => k.startsWith('guildhall.read')).length`); n != 0 {
			t.Fatalf("read states in localStorage (%d keys); want them from the server", n)
		}
		// Reading it in one browser clears it in the other, live (MESSAGE_ACK).
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, other.ID))
		bob.waitFor("the message", hasContent("no mention here"), 10*time.Second)
		bob2.waitFor("#other read, no mention", `!(`+unread+`) && (`+mentions+`) === ''`, 10*time.Second)
		bob2.open("/")
		bob2.waitConn("connected", 15*time.Second)
		bob2.waitFor("#other", channel, 10*time.Second)
		if eval[bool](bob2, unread) {
			t.Fatal("#other is unread again after a reload: the ack did not reach the server")
		}
		bob.click(fmt.Sprintf(`.channel[data-channel-id="%s"]`, general))
	})

	var dmID string
	t.Run("direct messages", func(t *testing.T) {
		alice.t, bob.t = t, t
		// From the member list: the message button beside Bob (keyboard: focus, Enter).
		dmButton := fmt.Sprintf(`#members [aria-label=%s]`, jsString("Message "+bobName))
		alice.waitFor("the message button", `document.querySelector(`+jsString(dmButton)+`)`, 10*time.Second)
		if eval[bool](alice, `document.querySelector(`+jsString(fmt.Sprintf(`#members [aria-label=%s]`, jsString("Message "+aliceName)))+`) !== null`) {
			t.Error("alice is offered a DM with herself")
		}
		alice.do(5*time.Second, chromedp.Focus(chromedp.CSS(dmButton)))
		alice.key(kb.Enter)
		alice.waitFor("the DM", fmt.Sprintf(`document.getElementById('channel-name').textContent === %s && document.getElementById('channel-name').classList.contains('dm') && location.pathname.startsWith('/channels/@me/')`, jsString(bobName)), 10*time.Second)
		dmID = eval[string](alice, `location.pathname.split('/')[3]`)
		alice.waitFor("the DM in the list", fmt.Sprintf(`document.querySelector('.channel.dm[data-channel-id="%s"][aria-current="true"]')`, dmID), 5*time.Second)
		alice.send("psst, bob")
		// Bob: the DM home shows unread and a mention (every DM message is one).
		bob.waitFor("an unread DM", `document.getElementById('home-item').classList.contains('unread') && document.querySelector('#home .badge')?.textContent === '1'`, 10*time.Second)
		bob.click("#home")
		bob.waitFor("alice's DM, unread", fmt.Sprintf(`document.querySelector('.channel.dm[data-channel-id="%s"]')?.textContent.includes(%s)`, dmID, jsString(aliceName)), 5*time.Second)
		bob.waitFor("the DM's message", hasContent("psst, bob"), 10*time.Second)
		bob.waitFor("the DM read", `!document.getElementById('home-item').classList.contains('unread') && !document.querySelector('#home .badge')`, 10*time.Second)
		bob.send("hi alice, privately")
		alice.waitFor("bob's answer, live", hasContent("hi alice, privately"), 10*time.Second)
		// The DM has no member list; the guild's messages are not here.
		if eval[bool](alice, hasContent("the answer")) {
			t.Fatal("the DM shows #general's messages")
		}
		namedControls(t, alice)
		namedControls(t, bob)
	})

	t.Run("files", func(t *testing.T) {
		alice.t, bob.t = t, t
		// The rail is redrawn as unread marks change (the DMs just before): click
		// the button found now, not one found a moment ago.
		guildButton := fmt.Sprintf(`document.querySelector('.guild-button[data-guild-id="%s"]').click()`, g.ID)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](guildButton))
		alice.waitFor("#general", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s`, jsString(general)), 5*time.Second)
		bob.do(5*time.Second, chromedp.Evaluate[chromedp.Void](guildButton))
		bob.waitFor("#general", fmt.Sprintf(`document.querySelector('.channel[aria-current="true"]')?.dataset.channelId === %s`, jsString(general)), 5*time.Second)

		dir := t.TempDir()
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for i := range img.Pix {
			img.Pix[i] = byte(i * 7)
			if i%4 == 3 {
				img.Pix[i] = 255 // opaque
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		pngPath := filepath.Join(dir, "dot.png")
		if err := os.WriteFile(pngPath, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		// The button opens the file chooser.
		alice.chooseFiles("#attach", pngPath)
		chips := `[...document.querySelectorAll('#uploads .upload .name')].map(e => e.textContent).join(',')`
		alice.waitFor("the image, ready to send", chips+` === 'dot.png'`, 5*time.Second)
		// A drop on the chat (the hint shows while dragging).
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`(() => {
			const dt = new DataTransfer();
			dt.items.add(new File(['hello notes'], 'notes.txt', { type: 'text/plain' }));
			const chat = document.getElementById('messages');
			chat.dispatchEvent(new DragEvent('dragenter', { dataTransfer: dt, bubbles: true, cancelable: true }));
			chat.dispatchEvent(new DragEvent('dragover', { dataTransfer: dt, bubbles: true, cancelable: true }));
			window.__dropHint = getComputedStyle(document.getElementById('drop-hint')).display;
			chat.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		})()`))
		if hint := eval[string](alice, `window.__dropHint`); hint == "none" {
			t.Error("no drop hint while files are dragged over the chat")
		}
		alice.waitFor("the dropped file", chips+` === 'dot.png,notes.txt'`, 5*time.Second)
		// A paste in the composer; then one removed again.
		paste := func(name string) {
			alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
				const dt = new DataTransfer();
				dt.items.add(new File(['pasted!'], %s, { type: 'text/plain' }));
				document.getElementById('composer-input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
			})()`, jsString(name))))
		}
		paste("pasted.txt")
		paste("oops.txt")
		alice.waitFor("the pasted files", chips+` === 'dot.png,notes.txt,pasted.txt,oops.txt'`, 5*time.Second)
		alice.click(`#uploads [aria-label="Remove oops.txt"]`)
		alice.waitFor("one file removed", chips+` === 'dot.png,notes.txt,pasted.txt'`, 5*time.Second)
		// Over Discord's limits the client refuses and says why, before any upload:
		// a file past 25 MiB together, an eleventh file.
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`(() => {
			const dt = new DataTransfer();
			dt.items.add(new File([new Uint8Array(25 << 20)], 'huge.bin'));
			document.getElementById('composer-input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
		})()`))
		alice.waitFor("the refusal of the huge file", `[...document.querySelectorAll('.toast')].some(e => e.textContent.startsWith('huge.bin is too large'))`, 5*time.Second)
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`(() => {
			const dt = new DataTransfer();
			for (let i = 0; i < 8; i++) dt.items.add(new File(['x'], 'many' + i + '.txt'));
			document.getElementById('composer-input').dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
		})()`))
		alice.waitFor("the refusal of the eleventh file", `[...document.querySelectorAll('.toast')].some(e => e.textContent === 'At most 10 files go with one message.')`, 5*time.Second)
		if n := eval[int](alice, `document.querySelectorAll('#uploads .upload').length`); n != 10 {
			t.Fatalf("%d files ready to send; want the 10 allowed", n)
		}
		alice.do(5*time.Second, chromedp.Evaluate[chromedp.Void](`[...document.querySelectorAll('#uploads [aria-label^="Remove many"]')].forEach(b => b.click())`))
		alice.waitFor("back to three files", chips+` === 'dot.png,notes.txt,pasted.txt'`, 5*time.Second)
		testenv.Screenshot(t, alice.ctx, shots, "web-composer-files")
		namedControls(t, alice)
		alice.send("three files")
		alice.waitFor("an empty file list", `document.getElementById('uploads').hidden`, 5*time.Second)

		row := `[...document.querySelectorAll('.msg[data-id]')].find(e => e.dataset.id && e.querySelector('.content')?.textContent === 'three files')`
		for _, p := range []*page{bob, alice} {
			// The image is drawn at its size from this origin; the others are links with their sizes.
			p.waitFor("the image, loaded", fmt.Sprintf(`(() => {
				const img = %s?.querySelector('.attachment.image img');
				return !!img && img.complete && img.naturalWidth === 64 && img.naturalHeight === 48 && img.alt === 'dot.png' &&
					img.getBoundingClientRect().width === 64 && img.getBoundingClientRect().height === 48 && img.src.startsWith(location.origin + '/attachments/');
			})()`, row), 15*time.Second)
			files := eval[[]string](p, `[...`+row+`.querySelectorAll('.attachment.file')].map(e => e.querySelector('a').textContent + ' ' + e.querySelector('.size').textContent)`)
			if strings.Join(files, ",") != "notes.txt 11 B,pasted.txt 7 B" {
				t.Fatalf("%s: file links %v", p.name, files)
			}
		}
		// The link downloads what was sent.
		href := eval[string](bob, row+`.querySelector('.attachment.file a').href`)
		resp, err := http.Get(href)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello notes" {
			t.Fatalf("GET %s = %d %q", href, resp.StatusCode, body)
		}
		time.Sleep(300 * time.Millisecond)
		testenv.Screenshot(t, bob.ctx, shots, "web-files")
	})

	t.Run("phone width", func(t *testing.T) {
		phone := openPage(t, b, s, "phone", 390, 844)
		phone.signIn(bobToken)
		phone.open("/channels/@me/" + dmID)
		phone.waitConn("connected", 15*time.Second)
		phone.waitFor("the DM, from its link", hasContent("hi alice, privately"), 15*time.Second)
		layout := eval[map[string]float64](phone, `(() => {
			const r = (id) => document.getElementById(id).getBoundingClientRect();
			return {doc: document.documentElement.scrollWidth, attachLeft: r('attach').left, sendRight: r('send').right, sidebarRight: r('sidebar').right};
		})()`)
		if layout["doc"] > 390 || layout["attachLeft"] < 0 || layout["sendRight"] > 390 || layout["sidebarRight"] > 0 {
			t.Fatalf("phone layout: %v", layout)
		}
		phone.click("#open-nav")
		phone.waitFor("the DM list in the drawer", fmt.Sprintf(`(() => {
			const b = document.querySelector('.channel.dm[data-channel-id="%s"]');
			return !!b && b.getBoundingClientRect().left >= 0 && document.getElementById('rail').getBoundingClientRect().left >= 0;
		})()`, dmID), 5*time.Second)
		testenv.Screenshot(t, phone.ctx, shots, "web-phone-dms")
	})
}

// connectNATS connects to the embedded NATS of the server in dataDir as role,
// with the credentials it created there.
func connectNATS(t *testing.T, dataDir string, role ghnats.Role) (*natsgo.Conn, jetstream.JetStream) {
	t.Helper()
	url, err := os.ReadFile(filepath.Join(dataDir, "nats.url"))
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := ghnats.ConnectAs(strings.TrimSpace(string(url)), "web test", role, ghnats.ClientAuth{Dir: filepath.Join(dataDir, "creds")})
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// BenchmarkWebLargeChannel measures the client on a channel with 10,000 messages
// of history (seeded over REST): the time until the newest messages show after
// the page opens, the time to scroll back to the first message (paging with
// before=), then, with all 10,000 loaded, the time to draw the channel when it is
// opened again, a scroll through the whole list one screen per frame, and how
// many rows the DOM holds. Run it with
//
//	go test -run '^$' -bench WebLargeChannel -benchtime 1x ./cmd/guildhall/
func BenchmarkWebLargeChannel(b *testing.B) {
	const n = 10000
	s := startStack(b, b.TempDir())
	tok, _ := s.rest.Register(b, "perf"+randName())
	var g struct{ ID string }
	s.rest.Must(b, http.StatusCreated, "POST", "/guilds", tok, map[string]string{"name": "Perf"}, &g)
	var chans []struct{ ID string }
	s.rest.Must(b, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", tok, nil, &chans)
	big := chans[0].ID
	var other struct{ ID string }
	s.rest.Must(b, http.StatusCreated, "POST", "/guilds/"+g.ID+"/channels", tok, map[string]any{"name": "other", "type": 0}, &other)
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s.rest.Must(b, http.StatusOK, "POST", "/channels/"+big+"/messages", tok,
					map[string]string{"content": fmt.Sprintf("message %05d: %s", i, strings.Repeat("lorem ipsum ", i%7+1))}, nil)
			}
		}()
	}
	wg.Wait()
	b.Logf("seeded %d messages in %v", n, time.Since(start).Round(time.Millisecond))
	br := testenv.StartBrowser(b)
	ctx := br.Page(b, 1280, 800)
	run := func(steps ...chromedp.Action[chromedp.Void]) {
		b.Helper()
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			b.Fatal(err)
		}
	}
	num := func(expr string) float64 {
		b.Helper()
		c, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		v, err := chromedp.Run(c, chromedp.Evaluate[float64](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			b.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	base := "http://" + s.addr
	run(chromedp.Navigate(base+"/"), chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`localStorage.setItem('guildhall.token', %s)`, jsString(tok))))
	const frame = `() => new Promise(r => requestAnimationFrame(() => r()))`
	for b.Loop() {
		run(chromedp.Navigate(base + "/"))
		// Navigation start is 0 on the page's clock.
		open := num(`(async () => {
			const frame = ` + frame + `;
			while (!document.querySelector('#messages .msg')) await frame();
			return performance.now();
		})()`)
		top := num(`(async () => {
			const frame = ` + frame + `;
			const m = document.getElementById('messages');
			const t0 = performance.now();
			while (!document.querySelector('.history-start')) { m.scrollTop = 0; await frame(); }
			return performance.now() - t0;
		})()`)
		size := num(`Number(document.querySelector('#messages .vlist-row').getAttribute('aria-setsize'))`)
		if size != n+1 {
			b.Fatalf("the list holds %v rows; want %d", size, n+1)
		}
		reopen := num(`(async () => {
			const frame = ` + frame + `;
			document.querySelector('.channel[data-channel-id="` + other.ID + `"]').click();
			await frame();
			const t0 = performance.now();
			document.querySelector('.channel[data-channel-id="` + big + `"]').click();
			while (document.querySelector('#messages .vlist-row')?.getAttribute('aria-setsize') !== '` + fmt.Sprint(n+1) + `' || !document.querySelector('#messages .msg')) await frame();
			return performance.now() - t0;
		})()`)
		sweep := num(`(async () => {
			const frame = ` + frame + `;
			const m = document.getElementById('messages');
			m.scrollTop = 0; await frame(); await frame();
			let frames = 0, worst = 0, last = performance.now(), t0 = last;
			while (m.scrollTop + m.clientHeight < m.scrollHeight - 2) {
				m.scrollTop += m.clientHeight; await frame();
				const now = performance.now(); worst = Math.max(worst, now - last); last = now; frames++;
			}
			window.__sweep = {frames, worst, total: performance.now() - t0};
			return (performance.now() - t0) / frames;
		})()`)
		frames := num(`window.__sweep.frames`)
		worst := num(`window.__sweep.worst`)
		rows := num(`document.querySelectorAll('#messages .vlist-row').length`)
		b.ReportMetric(open, "open-ms")
		b.ReportMetric(top, "scroll-to-first-ms")
		b.ReportMetric(reopen, "reopen-10k-ms")
		b.ReportMetric(sweep, "ms/frame-sweep")
		b.ReportMetric(worst, "worst-frame-ms")
		b.ReportMetric(rows, "dom-rows")
		b.Logf("open %.0f ms; scroll to the first of %d messages %.0f ms; reopen with all loaded %.0f ms; sweep %v screens, %.1f ms/frame (worst %.0f ms); %v rows in the DOM",
			open, n, top, reopen, frames, sweep, worst, rows)
	}
}

// largeGuild makes a guild owned by token with 251 other members (past Discord's
// large_threshold of 250 with the owner) and returns its id and an invite code.
func largeGuild(t *testing.T, s *stack, ownerToken, name string) (guildID, inviteCode string) {
	t.Helper()
	var g struct{ ID string }
	s.rest.Must(t, http.StatusCreated, "POST", "/guilds", ownerToken, map[string]string{"name": name}, &g)
	var chans []struct{ ID string }
	s.rest.Must(t, http.StatusOK, "GET", "/guilds/"+g.ID+"/channels", ownerToken, nil, &chans)
	var inv struct{ Code string }
	s.rest.Must(t, http.StatusOK, "POST", "/channels/"+chans[0].ID+"/invites", ownerToken, map[string]any{}, &inv)
	const joiners = 251
	names := make(chan string, joiners)
	for i := range joiners {
		names <- fmt.Sprintf("m%d%s", i, randName())
	}
	close(names)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for name := range names {
				tok, _ := s.rest.Register(t, name)
				s.rest.Must(t, http.StatusOK, "POST", "/invites/"+inv.Code, tok, nil, nil)
			}
		})
	}
	wg.Wait()
	return g.ID, inv.Code
}
