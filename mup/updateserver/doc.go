// Package updateserver is the MUP Update Server (MUP paper, Sensors 2021,
// Fig. 2): it updates one device (Update), or a campaign of devices
// (Campaign), through the bridge. Per device it finds the device and its
// YANG module in the bridge's devices lists, reads the firmware topic from
// that module (the input data point of sendFirmwareImage, see
// yang.InputTopics), asks for a token (getDeviceToken), sends the extended
// manifest it signs (sendExtendedManifest), publishes the image in slices
// straight to the broker with stop-and-wait or windowed flow control, has
// the device check the image (sendFirmwareImage), checks the receipt a
// device that signs sends with its answer (the verdict: Verified or
// Unverified; mup.VerifyReceipt) and waits for the new version. With a KeyChannel (the E2E channel of package
// mup/e2e/manager) the slices are sealed under a fresh key per update.
//
// An update refuses what it can before the device hears of it, in this
// order: locally (CheckLocal: the image against each manifest, the
// vendor's signature against UpdateConfig.VendorKeys, the Update Server's
// key against UpdateConfig.ServerPublicKey, the slice size); then the
// device and its module, from the bridge; then the broker, connected and
// the device's ack topic subscribed (Broker, shared by a campaign's
// updates). Every later wait has a deadline its error names:
// UpdateConfig.RPCTimeout for each rpc (ErrNoAnswer) and each step of the
// key exchange, AckTimeout and MaxRetries for each slice (ErrNoAck),
// RebootWait for the new version (ErrNoNewVersion).
//
// An Observer (UpdateConfig.Observer) is told of each update as it ends,
// with its Result; Outcome and UpdateError.Phase classify failures into
// small fixed sets, for counting (the console's metrics).
//
// Client is its typed NETCONF client: requests and replies go through
// encoding/xml, and an <rpc-error> comes back as an *RPCError.
//
// The byte formats are package mup's (mup/PROTOCOL.md). The end-to-end
// tests, with the real bridge and simulated devices, are in
// internal/systemtest; this package's own tests run a NETCONF server of
// package netconf in the bridge's place.
package updateserver
