package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/mup"
	v1 "github.com/myno-bridge/myno/mup/v1"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "make MUP keys and certificates",
		Commands: []*cli.Command{{
			Name:  "gen",
			Usage: "generate a P-256 key pair: --vendor (with its CA certificate) or --update-server (certified by the vendor CA)",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "vendor", Usage: "the vendor key and self-signed CA certificate"},
				&cli.BoolFlag{Name: "update-server", Usage: "the Update Server key, with a certificate signed by the vendor CA"},
				&cli.StringFlag{Name: "out", Value: ".", Usage: "output `DIR`", Sources: cli.EnvVars("MYNO_KEYS_DIR")},
				&cli.StringFlag{Name: "vendor-key", Usage: "vendor key `FILE` (for --update-server)", Sources: cli.EnvVars("MYNO_VENDOR_KEY")},
				&cli.StringFlag{Name: "vendor-cert", Usage: "vendor CA certificate `FILE` (for --update-server)", Sources: cli.EnvVars("MYNO_VENDOR_CERT")},
				&cli.DurationFlag{Name: "validity", Value: 5 * 365 * 24 * time.Hour, Usage: "certificate validity"},
				&cli.StringFlag{Name: "format", Value: "pem", Usage: "pem (PKCS #8 key and certificate) or v1 (MYNO's MUP v1: <name>.priv.hex and <name>.pub-xy.hex, no certificate)", Sources: cli.EnvVars("MYNO_KEYS_FORMAT")},
			},
			Action: runKeysGen,
		}, {
			Name:  "import",
			Usage: "turn a MUP v1 private key (64 hex digits, MYNO's form) into a PEM key for the other commands",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "v1-key", Usage: "MUP v1 private key `FILE` (hex)", Required: true},
				&cli.StringFlag{Name: "out", Usage: "PEM key `FILE` to write (mode 0600)", Required: true},
			},
			Action: runKeysImport,
		}, {
			Name:  "export",
			Usage: "write a PEM key in MUP v1 form: <name>.priv.hex (mode 0600) and <name>.pub-xy.hex",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "key", Usage: "PEM key `FILE`", Required: true},
				&cli.StringFlag{Name: "name", Usage: "file name `PREFIX`", Required: true},
				&cli.StringFlag{Name: "out", Value: ".", Usage: "output `DIR`", Sources: cli.EnvVars("MYNO_KEYS_DIR")},
			},
			Action: runKeysExport,
		}},
	}
}

// writeV1Pair writes key in MUP v1 form: dir/name.priv.hex (0600) and
// dir/name.pub-xy.hex.
func writeV1Pair(dir, name string, key *ecdsa.PrivateKey) error {
	priv, err := v1.EncodePrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := v1.EncodePublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, name+".priv.hex"), append(priv, '\n'), 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, name+".pub-xy.hex"), append(pub, '\n'), 0o644)
}

// readV1Key reads a MUP v1 private key file (hex; a final newline and
// spaces around are allowed).
func readV1Key(file string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	key, err := v1.DecodePrivateKey(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return key, nil
}

// readSigningKey reads a PEM key, or a MUP v1 hex key.
func readSigningKey(file string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if bytes.Contains(b, []byte("-----BEGIN")) {
		return mup.ReadKey(file)
	}
	return readV1Key(file)
}

// readVerifyingKey reads a P-256 public key: MUP v1's 128 hex digits
// (X‖Y, a .pub-xy.hex file), or PEM (a PUBLIC KEY, a CERTIFICATE, or a
// private key whose public half is taken).
func readVerifyingKey(file string) (*ecdsa.PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		pub, err := v1.DecodePublicKey(bytes.TrimSpace(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return pub, nil
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	var pub any
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		var key *ecdsa.PrivateKey
		if key, err = mup.ReadKey(file); err == nil {
			pub = &key.PublicKey
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s: not a P-256 public key", file)
	}
	return ec, nil
}

func runKeysImport(_ context.Context, cmd *cli.Command) error {
	key, err := readV1Key(cmd.String("v1-key"))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("keys import: %w", err)}
	}
	if err := mup.WriteKey(cmd.String("out"), key); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("keys import: %w", err)}
	}
	pub, _ := v1.EncodePublicKey(&key.PublicKey)
	fmt.Fprintf(cmd.Root().Writer, "wrote %s (public key %s)\n", cmd.String("out"), pub)
	return nil
}

func runKeysExport(_ context.Context, cmd *cli.Command) error {
	key, err := mup.ReadKey(cmd.String("key"))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("keys export: %w", err)}
	}
	if err := os.MkdirAll(cmd.String("out"), 0o700); err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := writeV1Pair(cmd.String("out"), cmd.String("name"), key); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("keys export: %w", err)}
	}
	fmt.Fprintf(cmd.Root().Writer, "wrote %s\n", filepath.Join(cmd.String("out"), cmd.String("name")+".{priv.hex,pub-xy.hex}"))
	return nil
}

func runKeysGen(_ context.Context, cmd *cli.Command) error {
	out := cmd.String("out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return &exitError{code: 1, err: err}
	}
	key, err := mup.GenerateKey()
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	w := cmd.Root().Writer
	switch {
	case cmd.Bool("vendor") == cmd.Bool("update-server"):
		return &exitError{code: 2, err: errors.New("keys gen: give exactly one of --vendor and --update-server")}
	case cmd.String("format") == "v1":
		// MUP v1 has no certificates: the device holds both public keys.
		name := map[bool]string{true: "vendor", false: "update-server"}[cmd.Bool("vendor")]
		if err := writeV1Pair(out, name, key); err != nil {
			return &exitError{code: 1, err: err}
		}
	case cmd.String("format") != "pem":
		return &exitError{code: 2, err: fmt.Errorf("keys gen: --format %q: want pem or v1", cmd.String("format"))}
	case cmd.Bool("vendor"):
		ca, err := mup.VendorCA(key, "MYNO vendor CA", cmd.Duration("validity"))
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if err := writePair(out, "vendor", key, ca); err != nil {
			return &exitError{code: 1, err: err}
		}
	default:
		vk, err := mup.ReadKey(cmd.String("vendor-key"))
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("keys gen: --vendor-key: %w", err)}
		}
		vc, err := mup.ReadCertificate(cmd.String("vendor-cert"))
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("keys gen: --vendor-cert: %w", err)}
		}
		cert, err := mup.ServerCertificate(&key.PublicKey, "MYNO update server", vc, vk, cmd.Duration("validity"))
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		if err := writePair(out, "update-server", key, cert); err != nil {
			return &exitError{code: 1, err: err}
		}
	}
	fmt.Fprintf(w, "wrote %s\n", out)
	return nil
}

func writePair(dir, name string, key *ecdsa.PrivateKey, cert *x509.Certificate) error {
	if err := mup.WriteKey(filepath.Join(dir, name+".key"), key); err != nil {
		return err
	}
	return mup.WriteCertificate(filepath.Join(dir, name+".crt"), cert)
}

func manifestCommand() *cli.Command {
	return &cli.Command{
		Name:  "manifest",
		Usage: "MUP vendor manifests",
		Commands: []*cli.Command{{
			Name:  "sign",
			Usage: "write the vendor manifest of an image, signed by the vendor key (COSE_Sign1, ES256)",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "image", Usage: "firmware image `FILE`", Required: true},
				&cli.StringFlag{Name: "app-id", Usage: "application id the image is for", Required: true},
				&cli.Uint32Flag{Name: "version", Usage: "the image's version", Required: true},
				&cli.Uint32Flag{Name: "old-version", Usage: "the version it updates (0: any)"},
				&cli.Uint32Flag{Name: "link-offset", Usage: "link offset of the image"},
				&cli.StringFlag{Name: "vendor-key", Usage: "vendor key `FILE`", Required: true, Sources: cli.EnvVars("MYNO_VENDOR_KEY")},
				&cli.StringFlag{Name: "out", Usage: "output `FILE` (default: <image>.manifest, or <image>.v1manifest)"},
				&cli.StringFlag{Name: "format", Value: "cose", Usage: "cose (this project's MUP) or v1 (MYNO's: the inner string and the vendor's r||s signature in hex; the key may be PEM or MUP v1 hex)", Sources: cli.EnvVars("MYNO_MANIFEST_FORMAT")},
			},
			Action: func(_ context.Context, cmd *cli.Command) error {
				image, err := os.ReadFile(cmd.String("image"))
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				switch cmd.String("format") {
				case "v1":
					return signV1Manifest(cmd, image)
				case "cose":
				default:
					return &exitError{code: 2, err: fmt.Errorf("manifest sign: --format %q: want cose or v1", cmd.String("format"))}
				}
				key, err := mup.ReadKey(cmd.String("vendor-key"))
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				m := mup.NewVendorManifest(image, cmd.String("app-id"), cmd.Uint32("version"), cmd.Uint32("old-version"), cmd.Uint32("link-offset"))
				signed, err := mup.SignVendorManifest(m, key)
				if err != nil {
					return &exitError{code: 1, err: err}
				}
				out := cmd.String("out")
				if out == "" {
					out = cmd.String("image") + ".manifest"
				}
				if err := os.WriteFile(out, signed, 0o644); err != nil {
					return &exitError{code: 1, err: err}
				}
				fmt.Fprintf(cmd.Root().Writer, "wrote %s (%d bytes; app %s, version %d, %d image bytes, sha256 %x)\n%s\n",
					out, len(signed), m.AppID, m.Version, m.Size, m.Digest, base64.StdEncoding.EncodeToString(signed)[:16]+"...")
				return nil
			},
		}},
	}
}

// signV1Manifest writes the vendor's part of a MUP v1 manifest (the inner
// string and its signature: v1.EncodeVendorFile).
func signV1Manifest(cmd *cli.Command, image []byte) error {
	key, err := readSigningKey(cmd.String("vendor-key"))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("manifest sign: --vendor-key: %w", err)}
	}
	m, err := v1.NewManifest(image, cmd.String("app-id"), cmd.Uint32("link-offset"), cmd.Uint32("version"), cmd.Uint32("old-version"))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("manifest sign: %w", err)}
	}
	if err := m.SignInner(key); err != nil {
		return &exitError{code: 1, err: err}
	}
	file, err := m.EncodeVendorFile()
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	out := cmd.String("out")
	if out == "" {
		out = cmd.String("image") + ".v1manifest"
	}
	if err := atomicfile.Write(out, file, 0o644); err != nil {
		return &exitError{code: 1, err: err}
	}
	fmt.Fprintf(cmd.Root().Writer, "wrote %s (MUP v1; app %s, version %d, %d image bytes, sha256 %x)\n", out, m.AppID, m.Version, m.Size, m.Hash)
	return nil
}
