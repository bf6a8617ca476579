// Package systemtest runs the whole system in one process: the bridge
// (package bridge) with its embedded broker or Mosquitto, simulated
// devices (package devices) and the Update Server (package
// mup/updateserver). Its tests are the end-to-end MUP updates (MUP paper,
// Fig. 2), campaigns, confidential firmware over the E2E channel, and
// their benchmarks; the packages under test keep their own unit tests
// free of the bridge.
package systemtest
