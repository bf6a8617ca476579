package updateserver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// firmwareRPC is the MUP rpc whose input data point is the firmware topic
// (MUP paper, Fig. 2), as the device takes it from its description.
const firmwareRPC = "sendFirmwareImage"

// ErrNoFirmwareTopic is wrapped by the error of an update whose device's
// module gives sendFirmwareImage no input data point topic.
var ErrNoFirmwareTopic = errors.New("no firmware topic")

// firmwareTopic is where the device takes its slices: the input data
// point of its sendFirmwareImage, which the bridge's module for the device
// carries in the yang.InputTopicExtension statement, bound to the uuid as
// the device binds its description (wire.Expand). The module's source
// comes from get-schema (RFC 6022 §3.1), once per module per cache.
func firmwareTopic(ctx context.Context, nc *Client, dev *DeviceEntry, cache *ModuleCache) (string, error) {
	topics, err := cache.inputTopics(ctx, dev.Module, func() (map[string]string, error) {
		source, err := nc.Schema(dev.Module)
		if err != nil {
			return nil, err
		}
		return yang.InputTopics(source)
	})
	if err != nil {
		return "", fmt.Errorf("module %s: %w", dev.Module, err)
	}
	template, ok := topics[firmwareRPC]
	if !ok {
		return "", fmt.Errorf("%w: module %s has no %s statement in rpc %s", ErrNoFirmwareTopic, dev.Module, yang.InputTopicExtension, firmwareRPC)
	}
	topic := wire.Expand(template, dev.UUID)
	// The module comes from the bridge: a topic a device may not use (a
	// bootstrap topic, a wildcard) is refused rather than published to.
	if err := wire.CheckDeviceTopic(topic); err != nil {
		return "", fmt.Errorf("module %s: firmware topic: %w", dev.Module, err)
	}
	return topic, nil
}

// ModuleCache keeps the input topics of each module an Update Server has
// fetched: a module is fetched and parsed once, however many of its
// devices are updated and however many workers ask at once. A module's
// name carries the shape of its description, topics included, so the
// topics of one name never change; one cache may serve an Update Server
// for its whole life. It is safe for concurrent use.
type ModuleCache struct {
	mu      sync.Mutex
	modules map[string]*moduleEntry
}

type moduleEntry struct {
	done   chan struct{} // closed once topics and err are set
	topics map[string]string
	err    error
}

func NewModuleCache() *ModuleCache { return &ModuleCache{modules: map[string]*moduleEntry{}} }

// inputTopics returns module's input topics: from the cache, from a fetch
// in progress on another worker, or from fetch. A failed fetch is not
// kept: whoever waited for it fetches again, on its own session.
func (c *ModuleCache) inputTopics(ctx context.Context, module string, fetch func() (map[string]string, error)) (map[string]string, error) {
	for {
		c.mu.Lock()
		e, ok := c.modules[module]
		if !ok {
			e = &moduleEntry{done: make(chan struct{})}
			c.modules[module] = e
			c.mu.Unlock()
			e.topics, e.err = fetch()
			if e.err != nil {
				c.mu.Lock()
				delete(c.modules, module)
				c.mu.Unlock()
			}
			close(e.done)
			return e.topics, e.err
		}
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.topics, nil
		}
	}
}
