package testenv

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EnableAuth sets etcd's authentication up as an operator would: a root
// user (password root-pw), user with password and the root role, and
// authentication on. The cluster must have been started with
// StartEtcdTLS; the set-up connects with a client certificate for
// "admin".
func (e *Etcd) EnableAuth(user, password string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := clientv3.New(clientv3.Config{Endpoints: e.Endpoints(), TLS: e.ClientTLS("admin"), DialTimeout: 5 * time.Second, Context: ctx})
	if err != nil {
		e.t.Fatal(err)
	}
	defer admin.Close()
	for _, u := range []struct{ name, password string }{{"root", "root-pw"}, {user, password}} {
		if _, err := admin.UserAdd(ctx, u.name, u.password); err != nil {
			e.t.Fatalf("etcd: add user %s: %v", u.name, err)
		}
		if _, err := admin.UserGrantRole(ctx, u.name, "root"); err != nil {
			e.t.Fatalf("etcd: grant root to %s: %v", u.name, err)
		}
	}
	if _, err := admin.AuthEnable(ctx); err != nil {
		e.t.Fatalf("etcd: enable authentication: %v", err)
	}
}

// Get reads key as user (authentication on, see EnableAuth), "" when
// absent.
func (e *Etcd) Get(user, password, key string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := clientv3.Config{Endpoints: e.Endpoints(), DialTimeout: 5 * time.Second, Context: ctx, Username: user, Password: password}
	if e.pki != nil {
		cfg.TLS = e.ClientTLS(user)
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cli.Close()
	resp, err := cli.Get(ctx, key)
	if err != nil {
		e.t.Fatalf("etcd: get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}
