package updateserver

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"

	"github.com/veraison/go-cose"

	"github.com/myno-bridge/myno/mup"
	v1 "github.com/myno-bridge/myno/mup/v1"
)

// ErrLocalCheck is wrapped by the errors of CheckLocal: an update refused
// before anything left the Update Server.
var ErrLocalCheck = errors.New("refused before the device heard of it")

// CheckLocal checks an update before anything leaves this process, and so
// before the device hears of it: there is an image and a key; each
// manifest given (VendorSigned, V1Manifest) decodes and describes Image
// (its SHA-256 and its size); with VendorKeys, its vendor signature
// verifies with one of them (go-cose for MUP's COSE_Sign1, crypto/ecdsa
// for MUP v1's inner signature); with ServerPublicKey, what ServerKey
// signs (the extended manifest, MUP v1's outer signature) verifies with
// it; a slice fits what a device takes. (Which manifest a device needs
// follows from its module: Update refuses a missing one once it has read
// the module, still before the device hears of it.) Update runs it first;
// myno update before it connects anywhere. Its errors are *UpdateError, at step
// "manifest" (the image and the vendor's manifest) or "sign" (the Update
// Server's key), wrapping ErrLocalCheck.
func CheckLocal(cfg UpdateConfig) error {
	refuse := func(step, format string, args ...any) error {
		return &UpdateError{Step: step, Err: fmt.Errorf("%w: "+format, append([]any{ErrLocalCheck}, args...)...)}
	}
	if len(cfg.Image) == 0 {
		return refuse("manifest", "the image is empty")
	}
	if uint64(len(cfg.Image)) > math.MaxUint32 {
		return refuse("manifest", "the image is %d bytes, over the %d a manifest can describe", len(cfg.Image), uint32(math.MaxUint32))
	}
	if cfg.ServerKey == nil {
		return refuse("sign", "no Update Server key is given")
	}
	sum := sha256.Sum256(cfg.Image)
	if len(cfg.VendorSigned) > 0 {
		sliceSize := cfg.SliceSize
		if sliceSize <= 0 {
			sliceSize = DefaultSliceSize
		}
		if limit := maxSliceSize(cfg.OpenKeyChannel != nil); sliceSize > limit {
			return refuse("manifest", "slice size %d: a device takes at most %d bytes of image per slice", sliceSize, limit)
		}
		vm, err := mup.DecodeSignedVendorManifest(cfg.VendorSigned)
		if err != nil {
			return refuse("manifest", "the COSE vendor manifest: %v", err)
		}
		if !bytes.Equal(vm.Digest, sum[:]) || int(vm.Size) != len(cfg.Image) {
			return refuse("manifest", "the COSE vendor manifest describes another image (%d bytes, SHA-256 %x), not this one (%d bytes, SHA-256 %x)",
				vm.Size, vm.Digest, len(cfg.Image), sum)
		}
		if len(cfg.VendorKeys) > 0 {
			if err := verifyCOSE(cfg.VendorSigned, cfg.VendorKeys); err != nil {
				return refuse("manifest", "the COSE vendor manifest's signature does not verify with the vendor's key: %v", err)
			}
		}
		if cfg.ServerPublicKey != nil {
			// The extended manifest as a device will get it, but for a
			// nonce of its own: the device checks it with the key of
			// the Update Server's certificate.
			ext, err := mup.SignExtendedManifest(cfg.VendorSigned, "local-check", mup.NewNonce(), cfg.ServerKey)
			if err != nil {
				return refuse("sign", "%v", err)
			}
			if err := verifyCOSE(ext, []*ecdsa.PublicKey{cfg.ServerPublicKey}); err != nil {
				return refuse("sign", "the Update Server key does not sign what its certificate's key verifies: devices would refuse every extended manifest (%v)", err)
			}
		}
	}
	if len(cfg.V1Manifest) > 0 {
		m, err := v1.DecodeVendorFile(cfg.V1Manifest)
		if err != nil {
			return refuse("manifest", "the MUP v1 vendor manifest: %v", err)
		}
		if m.Hash != sum || int(m.Size) != len(cfg.Image) {
			return refuse("manifest", "the v1 manifest describes another image (%d bytes, SHA-256 %x), not this one (%d bytes, SHA-256 %x)",
				m.Size, m.Hash, len(cfg.Image), sum)
		}
		if _, err := v1.SplitImage(cfg.Image); err != nil {
			return refuse("manifest", "MUP v1: %v", err)
		}
		if len(cfg.VendorKeys) > 0 {
			inner, err := m.EncodeInner()
			if err != nil {
				return refuse("manifest", "the MUP v1 vendor manifest: %v", err)
			}
			var errs []error
			for _, k := range cfg.VendorKeys {
				err := v1.Verify(k, inner, m.InnerSignature)
				if err == nil {
					errs = nil
					break
				}
				errs = append(errs, err)
			}
			if errs != nil {
				return refuse("manifest", "the v1 manifest's inner signature does not verify with the vendor's key: %v", errors.Join(errs...))
			}
		}
		if cfg.ServerPublicKey != nil {
			m.Nonce = 1 // any: the outer signature covers it as the device's will
			if err := m.SignOuter(cfg.ServerKey); err != nil {
				return refuse("sign", "%v", err)
			}
			outer, err := m.EncodeOuter()
			if err != nil {
				return refuse("sign", "%v", err)
			}
			if err := v1.Verify(cfg.ServerPublicKey, outer, m.OuterSignature); err != nil {
				return refuse("sign", "the Update Server key does not sign what devices verify with the Update Server's public key (%v)", err)
			}
		}
	}
	return nil
}

// maxSliceSize is the most image bytes a slice may carry: a device takes
// mup.MaxSliceData bytes of slice data, which a sealed slice spends partly
// on its nonce and tag.
func maxSliceSize(sealed bool) int {
	if sealed {
		return mup.MaxSliceData - mup.SealedSliceOverhead
	}
	return mup.MaxSliceData
}

// verifyCOSE checks an ES256 COSE_Sign1 (RFC 9052 §4.4) with each of keys
// until one verifies it (go-cose); any other algorithm is refused,
// whatever the message claims.
func verifyCOSE(signed []byte, keys []*ecdsa.PublicKey) error {
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(signed); err != nil {
		return err
	}
	alg, err := msg.Headers.Protected.Algorithm()
	if err != nil || alg != cose.AlgorithmES256 {
		return fmt.Errorf("algorithm %v, want ES256", alg)
	}
	var errs []error
	for _, k := range keys {
		if k == nil {
			continue
		}
		v, err := cose.NewVerifier(cose.AlgorithmES256, k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if err := msg.Verify(nil, v); err != nil {
			errs = append(errs, err)
			continue
		}
		return nil
	}
	if len(errs) == 0 {
		return errors.New("no key to verify it with")
	}
	return errors.Join(errs...)
}
