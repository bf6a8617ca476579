package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/mup"
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
			},
			Action: runKeysGen,
		}},
	}
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
				&cli.StringFlag{Name: "out", Usage: "output `FILE` (default: <image>.manifest)"},
			},
			Action: func(_ context.Context, cmd *cli.Command) error {
				image, err := os.ReadFile(cmd.String("image"))
				if err != nil {
					return &exitError{code: 2, err: err}
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
