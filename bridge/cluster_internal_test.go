package bridge

import "testing"

func TestClusterNames(t *testing.T) {
	if _, err := newCluster("c1", "a", EtcdConfig{}, nil, nil); err == nil {
		t.Error("a cluster without etcd endpoints")
	}
	for _, tc := range []struct {
		cluster, instance string
		ok                bool
	}{
		{"c1", "a", true},
		{"prod.eu-1", "bridge_07", true},
		{"", "a", false},
		{"c/1", "a", false},
		{"c1", "a+", false},
		{"c1", "#", false},
		{"c1", "a:b", false},
		{"c1", string(make([]byte, 65)), false},
	} {
		_, err := newCluster(tc.cluster, tc.instance, EtcdConfig{Endpoints: []string{"http://127.0.0.1:1"}}, nil, nil)
		if (err == nil) != tc.ok {
			t.Errorf("cluster %q instance %q: err %v, want ok=%v", tc.cluster, tc.instance, err, tc.ok)
		}
	}
}
