package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/myno-bridge/myno/devices"
	"github.com/myno-bridge/myno/mup"
	v1 "github.com/myno-bridge/myno/mup/v1"
)

// demoMUP is what the demo's MUP device trusts and what an operator passes
// to myno update: keys, a firmware image and its signed vendor manifest,
// kept in <data-dir>/mup so that a restarted demo trusts the same keys.
type demoMUP struct {
	dir, image, manifest, serverKey string
	serverCert                      []byte // PEM, published by the bridge
	device                          devices.MUPConfig
	// v1Manifest is the vendor file of the same image for MUP v1 (myno
	// manifest sign --format v1), and v1Device what the demo's MUP v1
	// device (MYNO's protocol) trusts: the same vendor and server keys.
	v1Manifest string
	v1Device   devices.MUPv1Config
}

const (
	demoAppID        = "myno-demo"
	demoImageSize    = 87800 // the MUP paper's image size
	demoFirmwareFrom = 1
	demoFirmwareTo   = 2
)

// prepareDemoMUP creates (once) a vendor CA, an Update Server certificate
// signed by it, a firmware image for version 2 and its vendor manifest.
func prepareDemoMUP(dataDir string) (*demoMUP, error) {
	dir := filepath.Join(dataDir, "mup")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	if _, err := os.Stat(p("vendor.key")); errors.Is(err, fs.ErrNotExist) {
		vk, err := mup.GenerateKey()
		if err != nil {
			return nil, err
		}
		ca, err := mup.VendorCA(vk, "MYNO demo vendor CA", 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		sk, err := mup.GenerateKey()
		if err != nil {
			return nil, err
		}
		sc, err := mup.ServerCertificate(&sk.PublicKey, "MYNO demo update server", ca, vk, 365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		if err := writePair(dir, "vendor", vk, ca); err != nil {
			return nil, err
		}
		if err := writePair(dir, "update-server", sk, sc); err != nil {
			return nil, err
		}
	}
	vk, err := mup.ReadKey(p("vendor.key"))
	if err != nil {
		return nil, err
	}
	ca, err := mup.ReadCertificate(p("vendor.crt"))
	if err != nil {
		return nil, err
	}
	sc, err := mup.ReadCertificate(p("update-server.crt"))
	if err != nil {
		return nil, err
	}
	if _, err := mup.VerifyServerCertificate(sc, ca); err != nil {
		return nil, fmt.Errorf("demo: update server certificate: %w", err)
	}
	serverCert, err := os.ReadFile(p("update-server.crt"))
	if err != nil {
		return nil, err
	}
	// The device learns the Update Server key only from the certificate
	// the bridge publishes, checked against the vendor CA.
	d := &demoMUP{dir: dir, image: p(fmt.Sprintf("firmware-v%d.bin", demoFirmwareTo)), serverKey: p("update-server.key"), serverCert: serverCert,
		device: devices.MUPConfig{AppID: demoAppID, Version: demoFirmwareFrom, SlotSize: 1 << 20, VendorKey: &vk.PublicKey, VendorCA: ca}}
	d.manifest = d.image + ".manifest"
	image := demoImage()
	if err := os.WriteFile(d.image, image, 0o644); err != nil {
		return nil, err
	}
	signed, err := mup.SignVendorManifest(mup.NewVendorManifest(image, demoAppID, demoFirmwareTo, demoFirmwareFrom, 0), vk)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.manifest, signed, 0o644); err != nil {
		return nil, err
	}
	// MUP v1 holds no certificate: the device has the keys as they are.
	serverPub, ok := sc.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("demo: the update server certificate holds no ECDSA key")
	}
	d.v1Device = devices.MUPv1Config{AppID: demoAppID, Version: demoFirmwareFrom, SlotSize: 1 << 20, VendorKey: &vk.PublicKey, ServerKey: serverPub}
	d.v1Manifest = d.image + ".v1manifest"
	m, err := v1.NewManifest(image, demoAppID, 0, demoFirmwareTo, demoFirmwareFrom)
	if err != nil {
		return nil, err
	}
	if err := m.SignInner(vk); err != nil {
		return nil, err
	}
	vendorFile, err := m.EncodeVendorFile()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(d.v1Manifest, vendorFile, 0o644); err != nil {
		return nil, err
	}
	return d, nil
}

// demoImage is a deterministic stand-in firmware image.
func demoImage() []byte {
	var b bytes.Buffer
	block := sha256.Sum256([]byte("myno demo firmware"))
	for b.Len() < demoImageSize {
		block = sha256.Sum256(block[:])
		b.Write(block[:])
	}
	return b.Bytes()[:demoImageSize]
}
