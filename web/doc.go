// Package web serves Guildhall's browser client: an HTML page, a style sheet and
// JavaScript modules embedded in the binary (no build step), so `guildhall serve`
// is a chat application a person can open as well as a server for bots.
//
// The client uses only the public APIs, as any Discord client would: REST under
// /api/v10 on the same origin and the gateway found through GET /gateway. Reading
// order for the client itself (static/js): main.js starts app.js (the session,
// the gateway connection, which channel is open, history paging, read states);
// gateway.js is the protocol (heartbeats, RESUME, re-IDENTIFY); store.js the
// state (messages ordered by snowflake and deduplicated by id); messagelist.js
// the virtualised list; views.js, rows.js, composer.js, dialogs.js and chrome.js
// the parts of App that draw and react; api.js, markup.js (message text to DOM
// nodes, never HTML), modal.js and dom.js are helpers.
//
// The handler serves the page at /, /invite/{code} (the client opens the invite)
// and /channels/… (deep links), and the files under /assets/. The WebSocket
// upgrade on / is the gateway's, not this package's: cmd/guildhall routes it.
package web
