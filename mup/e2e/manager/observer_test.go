package manager_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/myno-bridge/myno/mup/e2e/manager"
)

// exchanges is an Observer that keeps what it is told, as
// "kind device outcome", and "costed" when the cost counts messages.
type exchanges struct {
	mu  sync.Mutex
	got []string
}

func (x *exchanges) Exchanged(kind manager.Exchange, device string, cost manager.Phase, err error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	e := fmt.Sprintf("%s %s %s", kind, device, manager.Outcome(err))
	if cost.Messages > 0 {
		e += " costed"
	}
	x.got = append(x.got, e)
}

func (x *exchanges) all() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.got)
}

// Observers are told of every handshake, renewal and firmware key
// handover once, as it ends, with its outcome and cost; a removed one is
// told of nothing more.
func TestObserversAreToldOfEachExchange(t *testing.T) {
	b := embedded(t)
	pr := newPair(t, b, "dev-observed", "")
	var x exchanges
	remove := pr.m.AddObserver(&x)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch, err := pr.m.Open(ctx, pr.uuid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ch.SendFirmwareKey(ctx, "myno-app", 2, make([]byte, 16), []byte("short")); err == nil {
		t.Fatal("a 5-byte firmware key was sent")
	}
	// Nobody answers for an absent device.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = pr.m.Open(short, "dev-absent")
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handshake with an absent device: %v", err)
	}
	want := []string{
		"key-agreement dev-observed ok costed", // notify, ready
		"renewal dev-observed ok costed",       // update (resent, maybe), status
		"firmware-key dev-observed error",
		"key-agreement dev-absent timeout",
	}
	if got := x.all(); !slices.Equal(got, want) {
		t.Errorf("observed\n%q\nwant\n%q", got, want)
	}
	remove()
	remove()
	canceled, cancelNow := context.WithCancel(ctx)
	cancelNow()
	if _, err := pr.m.Open(canceled, "dev-absent"); manager.Outcome(err) != manager.OutcomeCanceled {
		t.Errorf("canceled handshake: %v (%s)", err, manager.Outcome(err))
	}
	if got := x.all(); len(got) != len(want) {
		t.Errorf("a removed observer was told %q", got[len(want):])
	}
}

// Outcome is one of a fixed set, whatever the error says.
func TestExchangeOutcomes(t *testing.T) {
	for err, want := range map[error]string{
		nil: manager.OutcomeOK,
		fmt.Errorf("%w: BAD-CERT: expired", manager.ErrRefused):                          manager.OutcomeRefused,
		fmt.Errorf("e2e handshake with x: no valid ready: %w", context.DeadlineExceeded): manager.OutcomeTimeout,
		fmt.Errorf("no status: %w", context.Canceled):                                    manager.OutcomeCanceled,
		errors.New("e2e manager: not started"):                                           manager.OutcomeError,
	} {
		if got := manager.Outcome(err); got != want {
			t.Errorf("%v: %q, want %q", err, got, want)
		}
	}
}
