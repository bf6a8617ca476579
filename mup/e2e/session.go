package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// ErrReplay is returned for a message whose sequence number was already
// seen or is older than the newest seen.
var ErrReplay = errors.New("e2e: replayed or stale message")

// Session carries messages over the E2E key after the handshake, one
// direction each way. Every message is
//
//	seq (8 bytes, big-endian) || Seal(key, plaintext, aad = label || topic || seq)
//
// so the broker can neither read nor change a message, move it to another
// topic, turn a manager message into a device one, or replay it: the
// receiver takes only sequence numbers above the last it accepted.
type Session struct {
	sealer    *Sealer
	sendLabel string
	recvLabel string

	mu       sync.Mutex
	sent     uint64
	received uint64 // the highest accepted; 0 before the first
}

// MaxSealed bounds a sealed message: a MaxMessage plaintext with its
// sequence number, nonce and tag. Larger ones are refused unopened.
const MaxSealed = MaxMessage + 8 + 12 + 16

// NewSession starts a session on the key; manager tells the side.
func NewSession(key []byte, manager bool) (*Session, error) {
	sealer, err := NewSealer(key)
	if err != nil {
		return nil, err
	}
	s := &Session{sealer: sealer, sendLabel: "device->manager", recvLabel: "manager->device"}
	if manager {
		s.sendLabel, s.recvLabel = s.recvLabel, s.sendLabel
	}
	return s, nil
}

func aad(label, topic string, seq uint64) []byte {
	out := make([]byte, 0, len(label)+len(topic)+18)
	out = binary.BigEndian.AppendUint16(out, uint16(len(label)))
	out = append(out, label...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(topic)))
	out = append(out, topic...)
	return binary.BigEndian.AppendUint64(out, seq)
}

// Seal encrypts the next message for topic.
func (s *Session) Seal(topic string, plaintext []byte) ([]byte, error) {
	s.mu.Lock()
	s.sent++
	seq := s.sent
	s.mu.Unlock()
	sealed, err := s.sealer.Seal(plaintext, aad(s.sendLabel, topic, seq))
	if err != nil {
		return nil, err
	}
	return append(binary.BigEndian.AppendUint64(nil, seq), sealed...), nil
}

// Open authenticates and decrypts a message received on topic, and
// refuses replays.
func (s *Session) Open(topic string, msg []byte) ([]byte, error) {
	if len(msg) < 8 || len(msg) > MaxSealed {
		return nil, fmt.Errorf("%w: %d bytes", ErrOpen, len(msg))
	}
	seq := binary.BigEndian.Uint64(msg)
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.received {
		return nil, fmt.Errorf("%w: sequence %d, already at %d", ErrReplay, seq, s.received)
	}
	out, err := s.sealer.Open(msg[8:], aad(s.recvLabel, topic, seq))
	if err != nil {
		return nil, err
	}
	s.received = seq // only after it authenticated: forged numbers move nothing
	return out, nil
}
