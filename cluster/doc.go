// Package cluster keeps the shared state of a cluster of bridges in etcd:
// which instances are alive (each holds a lease), and the registry of
// devices (each description shape once, by hash, and a small binding per
// device), which every instance follows with a watch. The MQTT broker
// stays the message bus; nothing of the cluster's state travels over it.
//
// Keys, under /myno/<cluster>/ (keys.go):
//
//	members/<instance>   the instance's start time, bound to its lease: it
//	                     goes when the lease expires (a dead instance) or
//	                     when the instance leaves
//	shapes/<sha256>      a description without its uuid, stored once per
//	                     shape (written in the registration's transaction
//	                     when absent)
//	devices/<uuid>       the binding: shape hash, registration time, the
//	                     instance that registered it (Binding, ≤ 1 KiB)
//	refs/<sha256>/<uuid> empty: uuid uses that shape; a shape is deleted,
//	                     atomically, when its last reference goes
//
// A registration or a delete is one etcd transaction. A delete removes the
// binding and its reference: an instance that was down while it happened lists the devices
// again when it comes back (Follow) and drops what is gone, so no
// tombstone is needed and a deleted device stays deleted.
//
// Ownership is rendezvous hashing over the live members (Owner): each
// member answers about 1/n of the devices, and a member that leaves or
// dies moves only its own.
//
// When etcd loses its quorum, reads and writes that need it fail: the
// member keeps what it knows, reports itself not writable (Writable), and
// the bridge serves the devices it knows, refusing registrations.
package cluster
