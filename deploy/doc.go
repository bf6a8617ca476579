// Package deploy holds the packaging files of the MYNO bridge (a systemd
// unit, a container image, a Compose file with Mosquitto; README.md) and,
// in its tests, the checks that they stay deployable: the unit verified by
// systemd-analyze, the binary a static ELF, the image multi-stage and
// non-root, every MYNO_* variable one the binary reads.
package deploy
