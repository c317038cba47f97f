// Package web serves Guildhall's browser client: an HTML page, a style sheet and
// JavaScript modules embedded in the binary (no build step), so `guildhall serve`
// is a chat application a person can open as well as a server for bots.
//
// The client uses only the public APIs, as any Discord client would: REST under
// /api/v10 on the same origin and the gateway found through GET /gateway. Reading
// order for the client itself: static/js/main.js (start, routing), gateway.js
// (heartbeats, RESUME, re-IDENTIFY), store.js (guilds, channels, messages ordered
// by snowflake and deduplicated by id), messagelist.js (the virtualised list),
// app.js (the views and what the user does), with api.js (REST), markup.js
// (message text to DOM nodes, never HTML) and modal.js (dialogs).
//
// The handler serves the page at /, /invite/{code} (the client opens the invite)
// and /channels/… (deep links), and the files under /assets/. The WebSocket
// upgrade on / is the gateway's, not this package's: cmd/guildhall routes it.
package web
