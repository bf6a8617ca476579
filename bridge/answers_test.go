package bridge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/myno-bridge/myno/internal/testenv"
	"github.com/myno-bridge/myno/mqtt/client"
)

func TestLateAndUnknownAnswers(t *testing.T) {
	b := startBridge(t, t.TempDir(), nil)
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr, err := client.Dial(ctx, client.Config{URL: b.BrokerURL(), ClientID: "stray", Protocol: client.MQTT5, Logger: testenv.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close(ctx)
	before := b.LateAnswers()
	for i, payload := range []string{"zz9;OK", "garbage", "zz10;NOOP;x"} {
		m := client.Message{Topic: "response/ghost", Payload: []byte(payload)}
		if i == 2 {
			m.CorrelationData = []byte("unknown-correlation")
		}
		if err := tr.Publish(ctx, m, 1); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, "3 late answers counted", func() bool { return b.LateAnswers() >= before+3 },
		func() string { return fmt.Sprintf("counted: %d", b.LateAnswers()-before) })
}
