// Package console serves the web console of the MUP paper (§3): a
// web-based NETCONF client of one or more bridges with an Update Server
// in it. Operators log in with their NETCONF credentials, which the
// console uses for every request it makes for them (so the bridges' NACM
// applies, and the console hides what the bridge would refuse: it reads
// the user's own rules, RFC 8341 §3.5.2); they see the devices of every
// bridge, live, call the devices' rpcs through forms generated from their
// modules (read with goyang from get-schema), and update firmware in
// either protocol with live progress.
//
// Pages are rendered on the server (html/template) with a little
// JavaScript of its own (EventSource for live updates, fetch for rpcs),
// embedded in the binary: nothing is fetched from the internet.
// Sessions are server-side; the browser holds only a random session id
// in an HttpOnly, SameSite=Strict cookie (Secure under HTTPS), and every
// form and request that changes something carries the session's CSRF
// token. The NETCONF password stays in the console's memory for the
// session's life (it opens NETCONF sessions for notifications and
// updates) and is never sent to the browser.
package console
