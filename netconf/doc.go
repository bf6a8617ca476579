// Package netconf is a reusable NETCONF server over SSH. It knows nothing
// about MQTT or devices; an application plugs in at runtime.
//
// Layers, one file each, in the way of golang.org/x/crypto/ssh:
//
//   - server.go: SSH transport (RFC 6242 §3): accepts only the "netconf"
//     subsystem, authenticates users (auth.go: bcrypt passwords, OpenSSH
//     authorized_keys, a persisted ed25519 host key), limits sessions,
//     authentication attempts, handshake, hello and idle time;
//   - framing.go: RFC 6242 §4 message framing, end-of-message and chunked,
//     with a strict chunk parser and a maximum message size;
//   - message.go and tree.go: hello, rpc and rpc-reply encoding; a small
//     XML tree (Element) with limits, no DTDs and UTF-8 only;
//   - session.go: the session state machine (RFC 6241 §8.1): hello first,
//     pipelined rpcs handled concurrently, replies in request order
//     (§4.1), notifications interleaved;
//   - ops.go, monitoring.go, notify.go, access.go: the base operations,
//     RFC 6022 netconf-state and get-schema, RFC 8525 yang-library, RFC 5277
//     subscriptions with RFC 6470 capability changes, and a NACM subset;
//   - subtree.go: RFC 6241 §6 subtree filtering.
//
// How an application (the MYNO bridge) plugs in:
//
//	srv, _ := netconf.NewServer(netconf.Config{HostKey: key, Users: users, Access: acl})
//	srv.AddModule(netconf.Module{Name: mod.Name, Revision: mod.Revision,
//		Namespace: mod.Namespace, Source: mod.Text})            // announced and served by get-schema
//	srv.Handle(mod.Name, mod.Namespace, "setColor", handler)   // an rpc
//	srv.AddState(mod.Name, stateFunc)                          // state data for <get>
//	srv.Notify(event)                                          // a notification to subscribers
//	go srv.Serve(ctx, listener)
//
// Handlers get the rpc's operation element and answer with output nodes,
// nothing (<ok/>), or an *RPCError carrying an RFC 6241 error-tag. Modules,
// handlers and state sources can be added and removed while sessions run:
// new sessions see the new capabilities, subscribed sessions get
// netconf-capability-change. See README.md in this folder.
package netconf
