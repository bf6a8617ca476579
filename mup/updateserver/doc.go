// Package updateserver is the MUP Update Server (MUP paper, Sensors 2021,
// Fig. 2): it updates one device, or a campaign of devices, through the
// bridge. Per device it asks for a token (getDeviceToken), sends the
// extended manifest it signs (sendExtendedManifest), publishes the image in
// slices straight to the broker with stop-and-wait or windowed flow
// control, has the device check the image (sendFirmwareImage) and waits
// for the new version. With a key channel (package mup/e2e/manager) the
// slices are sealed under a fresh key per update.
//
// The byte formats are package mup's (mup/PROTOCOL.md). The end-to-end
// tests, with the real bridge and simulated devices, are in
// internal/systemtest.
package updateserver
