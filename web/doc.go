// Package web serves Guildhall's browser client: an HTML page, a style sheet and
// JavaScript modules embedded in the binary (no build step), so `guildhall serve`
// is a chat application a person can open as well as a server for bots.
//
// The client uses only the public APIs, as any Discord client would: REST under
// /api/v10 on the same origin and the gateway found through GET /gateway.
// Reading order for the client itself (static/js): main.js starts app.js (the
// session, the gateway connection, which channel is open, history paging both
// ways from the first unread message, a reply's jump to its original, acks);
// gateway.js is the protocol (heartbeats, RESUME, re-IDENTIFY); store.js the
// state (messages ordered by snowflake and deduplicated by id, read states and
// mention counts from READY's read_state and MESSAGE_ACK, DM channels under the
// rail's "@me"); messagelist.js the virtualised list; views.js (rail, channel
// and DM lists, members, opening a DM), rows.js (a message: reply quote,
// reactions and their picker, attachments), composer.js (sending, replies,
// files from the button, a drop or a paste, sent multipart with progress and a
// cancel), dialogs.js (group DMs among them) and chrome.js are the parts of App
// that draw and react; api.js (fetch, and XMLHttpRequest for uploads),
// markup.js (message text to DOM nodes, never HTML), modal.js and dom.js are
// helpers.
//
// Attachments are drawn from this origin whatever host their URL names (the api
// that serves this page serves /attachments/), so the Content-Security-Policy
// stays 'self' for images, plus blob: for the previews of files about to be
// sent.
//
// The handler serves the page at /, /invite/{code} (the client opens the invite)
// and /channels/… (deep links), and the files under /assets/. The WebSocket
// upgrade on / is the gateway's, not this package's: cmd/guildhall routes it.
package web
