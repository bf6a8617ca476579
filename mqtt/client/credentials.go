package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/eclipse/paho.golang/autopaho"
)

// Credentials are how a client proves itself to its broker, and which
// brokers it trusts.
type Credentials struct {
	// Username and Password go in CONNECT (MQTT 5 §3.1.3.5, §3.1.3.6;
	// 3.1.1 §3.1.3.4, §3.1.3.5) when set.
	Username string
	Password string
	// TLSConfig is used for mqtts:// (also tls://, ssl://) URLs: the CAs
	// to trust and, for mutual TLS, the client certificate. nil means the
	// system's roots and no client certificate.
	TLSConfig *tls.Config
}

// LoadTLS makes the TLS configuration of a client: the system's roots
// plus the PEM certificates in caFile, and the client certificate in
// certFile with its key in keyFile (both or neither). All empty: nil.
func LoadTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("broker CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker CA %s: no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Redact is a broker URL fit for logs and errors: a password in it is
// replaced by "xxxxx".
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// connackReasons names the CONNACK refusals a client's credentials or
// identity cause (MQTT 5 §3.2.2.2).
var connackReasons = map[byte]string{
	0x80: "unspecified error",
	0x82: "protocol error",
	0x85: "client identifier not valid",
	0x86: "bad user name or password",
	0x87: "not authorized",
	0x88: "server unavailable",
	0x89: "server busy",
	0x8A: "banned",
	0x8C: "bad authentication method",
	0x97: "quota exceeded",
	0x9F: "connection rate exceeded",
}

// connectError says why the broker refused a connection, by name.
func connectError(err error) error {
	var ce *autopaho.ConnackError
	if !errors.As(err, &ce) {
		return err
	}
	name := connackReasons[ce.ReasonCode]
	if name == "" {
		name = "refused"
	}
	if ce.Reason != "" {
		name += ": " + ce.Reason
	}
	return fmt.Errorf("broker refused the connection: %s (CONNACK reason 0x%02X)", name, ce.ReasonCode)
}
