package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/myno-bridge/myno/cluster"
	"github.com/myno-bridge/myno/internal/testenv"
)

// A member reaches an etcd that serves clients over TLS only, asks for a
// client certificate and has authentication on, with the CA, a
// certificate and a user's password (--cluster-etcd-ca/-cert/-key,
// --cluster-etcd-username/-password-file); a wrong password, or no TLS,
// is refused at Join, naming etcd.
func TestJoinOverTLSWithAuthentication(t *testing.T) {
	pki := testenv.NewPKI(t, "etcd")
	e := testenv.StartEtcdTLS(t, 1, pki)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	e.EnableAuth("bridge", "bridge-pw")

	cfg := cluster.Config{Endpoints: e.Endpoints(), TLS: e.ClientTLS("bridge"), Username: "bridge", Password: "bridge-pw",
		Cluster: "c1", Instance: "a", RequestTimeout: 2 * time.Second, Logger: testenv.Logger()}
	m, err := cluster.Join(ctx, cfg)
	if err != nil {
		t.Fatalf("join over TLS as bridge: %v", err)
	}
	defer m.Close(context.Background())
	if err := m.Register(ctx, "dev-1", []byte(`{"uuid":"\x00"}`), time.Now()); err != nil {
		t.Fatalf("register over TLS as bridge: %v", err)
	}

	wrong := cfg
	wrong.Instance, wrong.Password = "b", "not-the-password"
	if m, err := cluster.Join(ctx, wrong); err == nil {
		m.Close(context.Background())
		t.Fatal("joined with a wrong password")
	}
	plain := cfg
	plain.Instance, plain.TLS = "c", nil
	if m, err := cluster.Join(ctx, plain); err == nil {
		m.Close(context.Background())
		t.Fatal("joined without TLS")
	}
}
