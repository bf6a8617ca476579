package updateserver

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/myno-bridge/myno/mup"
	"github.com/myno-bridge/myno/wire"
	"github.com/myno-bridge/myno/yang"
)

// The rpcs of a device that speaks this project's MUP (MUP paper, Fig. 2;
// mup/PROTOCOL.md). firmwareRPC's input data point is the firmware topic,
// as the device takes it from its description.
const (
	tokenRPC    = "getDeviceToken"
	manifestRPC = "sendExtendedManifest"
	firmwareRPC = "sendFirmwareImage"
)

// ErrNoFirmwareTopic is wrapped by the error of an update whose device's
// module gives sendFirmwareImage no input data point topic.
var ErrNoFirmwareTopic = errors.New("no firmware topic")

// firmwareTopic is where the device takes its slices: the input data
// point of its sendFirmwareImage, which the bridge's module for the device
// carries in the yang.InputTopicExtension statement, bound to the uuid as
// the device binds its description (wire.Expand). The module's source
// comes from get-schema (RFC 6022 §3.1), once per module per cache.
func firmwareTopic(ctx context.Context, nc *Client, dev *DeviceEntry, cache *ModuleCache) (string, error) {
	facts, err := cache.facts(ctx, nc, dev.Module)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", dev.Module, err)
	}
	template, ok := facts.topics[firmwareRPC]
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

// receiptOutput is the output of sendFirmwareImage where the device's
// module says the device puts a signed receipt (mup.IsReceiptOutput), or
// "" when the device declares none.
func receiptOutput(ctx context.Context, nc *Client, dev *DeviceEntry, cache *ModuleCache) (string, error) {
	facts, err := cache.facts(ctx, nc, dev.Module)
	if err != nil {
		return "", fmt.Errorf("module %s: %w", dev.Module, err)
	}
	for _, name := range facts.outputs[firmwareRPC] {
		if mup.IsReceiptOutput(name) {
			return name, nil
		}
	}
	return "", nil
}

// moduleFacts is what an update needs from a device's module.
type moduleFacts struct {
	topics   map[string]string   // input data point topics, by rpc (yang.InputTopics)
	outputs  map[string][]string // output leaves, by rpc (yang.RPCOutputs)
	protocol Protocol            // the MUP the device speaks (DetectProtocol)
}

// ModuleCache keeps what an Update Server read from each module it has
// fetched (input topics, rpc outputs, the protocol): a module is fetched and parsed
// once, however many of its devices are updated and however many workers
// ask at once. A module's name carries the shape of its description,
// topics and outputs included, so they never change for one name; one
// cache may serve an Update Server for its whole life. It is safe for
// concurrent use.
type ModuleCache struct {
	mu      sync.Mutex
	modules map[string]*moduleEntry
}

type moduleEntry struct {
	done  chan struct{} // closed once facts and err are set
	facts *moduleFacts
	err   error
}

func NewModuleCache() *ModuleCache { return &ModuleCache{modules: map[string]*moduleEntry{}} }

// facts returns module's facts: from the cache, from a fetch in progress
// on another worker, or fetched with get-schema (RFC 6022 §3.1) on nc. A
// failed fetch is not kept: whoever waited for it fetches again, on its
// own session.
func (c *ModuleCache) facts(ctx context.Context, nc *Client, module string) (*moduleFacts, error) {
	return c.get(ctx, module, func() (*moduleFacts, error) {
		source, err := nc.Schema(module)
		if err != nil {
			return nil, err
		}
		topics, err := yang.InputTopics(source)
		if err != nil {
			return nil, err
		}
		outputs, err := yang.RPCOutputs(source)
		if err != nil {
			return nil, err
		}
		inputs, err := yang.RPCInputs(source)
		if err != nil {
			return nil, err
		}
		return &moduleFacts{topics: topics, outputs: outputs, protocol: detectProtocol(inputs)}, nil
	})
}

func (c *ModuleCache) get(ctx context.Context, module string, fetch func() (*moduleFacts, error)) (*moduleFacts, error) {
	for {
		c.mu.Lock()
		e, ok := c.modules[module]
		if !ok {
			e = &moduleEntry{done: make(chan struct{})}
			c.modules[module] = e
			c.mu.Unlock()
			e.facts, e.err = fetch()
			if e.err != nil {
				c.mu.Lock()
				delete(c.modules, module)
				c.mu.Unlock()
			}
			close(e.done)
			return e.facts, e.err
		}
		c.mu.Unlock()
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.facts, nil
		}
	}
}
