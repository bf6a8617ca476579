package bridge_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/myno-bridge/myno/bridge"
	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/broker"
	"github.com/myno-bridge/myno/mqtt/client"
)

// An external broker over TLS (mqtts://), with the bridge trusting its CA
// from a file; the device uses the same broker's plain listener.
func TestExternalBrokerOverTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test broker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	srv := mqtt.New(&mqtt.Options{Logger: testenv.Logger()})
	srv.AddHook(new(auth.AllowHook), nil)
	tlsL := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tls", Address: "127.0.0.1:0",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}})
	plain := listeners.NewTCP(listeners.Config{Type: "tcp", ID: "plain", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tlsL); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddListener(plain); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	defer broker.CloseMochi(srv)

	// Without the CA the bridge refuses the broker's certificate.
	if b, err := bridge.Start(t.Context(), bridge.Config{NetconfListen: "127.0.0.1:0", DataDir: t.TempDir(), MQTTURL: "mqtts://" + tlsL.Address(),
		AdminPassword: adminPassword, Logger: testenv.Logger(), MQTTConnectTimeout: 2 * time.Second}); err == nil {
		b.Close()
		t.Fatal("an untrusted broker certificate was accepted")
	}
	b := startBridge(t, t.TempDir(), func(c *bridge.Config) { c.MQTTURL = "mqtts://" + tlsL.Address(); c.MQTTCAFile = caFile })
	defer b.Close()
	device(t, "mqtt://"+plain.Address(), "led-color.jsonld", "led-tls", client.MQTT5)
	s := session(t, b.NetconfAddr())
	reply, re := exec1(t, s, `<ledOn xmlns="`+namespace(t, "led-color.jsonld")+`"><uuidInput>led-tls</uuidInput></ledOn>`)
	if re != nil {
		t.Fatal(re)
	}
	mustContain(t, reply, "<retval")
}
