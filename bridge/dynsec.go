package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/myno-bridge/myno/mqtt/access"
	"github.com/myno-bridge/myno/mqtt/client"
)

// dynsecTimeout bounds the wait for the dynamic-security plugin's answer.
const dynsecTimeout = 5 * time.Second

// dynsecSync keeps the roles of Mosquitto's dynamic-security plugin in
// step with the registry (--mosquitto-dynsec): a device's role grants the
// topics of its description, the Update Servers' role every firmware
// topic. The plugin disconnects the clients of every role it changes, so
// a role is sent only when its rules differ from what the broker has
// (listRoles at start, then what was sent), and the changes of all
// registrations waiting at one moment go in one request.
type dynsecSync struct {
	mq     client.Transport
	policy access.Policy
	log    *slog.Logger

	mu      sync.Mutex
	dirty   map[string]bool   // device uuids whose role may have to change
	applied map[string]string // role -> digest of its ACLs at the broker

	send    sync.Mutex // one request at a time
	seq     atomic.Uint64
	updates atomic.Uint64 // requests that changed roles
	answers chan []access.DynsecResult
}

func newDynsecSync(mq client.Transport, policy access.Policy, b *Bridge) *dynsecSync {
	return &dynsecSync{mq: mq, policy: policy, log: b.log, dirty: map[string]bool{}, applied: map[string]string{},
		answers: make(chan []access.DynsecResult, 1)}
}

// onResponse takes a message on access.DynsecResponseTopic.
func (s *dynsecSync) onResponse(m client.Message) {
	r, err := access.DecodeDynsecResponse(m.Payload)
	if err != nil {
		s.log.Warn("dynamic-security answer not understood", "err", err)
		return
	}
	select {
	case s.answers <- r:
	default: // nobody waits: a late answer
	}
}

// start subscribes to the plugin's answers and reads the roles the
// broker has.
func (s *dynsecSync) start(ctx context.Context) error {
	if err := s.mq.Subscribe(ctx, access.DynsecResponseTopic); err != nil {
		return fmt.Errorf("mosquitto dynamic security: subscribe %s: %w", access.DynsecResponseTopic, err)
	}
	s.send.Lock()
	defer s.send.Unlock()
	res, err := s.request(ctx, []access.DynsecCommand{access.DynsecListRoles()})
	if err != nil {
		return err
	}
	if len(res) != 1 || res[0].Error != "" {
		return fmt.Errorf("mosquitto dynamic security: listRoles: %+v", res)
	}
	roles, err := access.DynsecRoleDigests(res[0].Data)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.applied = roles
	s.mu.Unlock()
	return nil
}

// mark notes that device uuid's role may have to change.
func (s *dynsecSync) mark(uuid string) {
	s.mu.Lock()
	s.dirty[uuid] = true
	s.mu.Unlock()
}

// flush sends the role changes of every marked device, and of the Update
// Servers, in one request, and waits for the plugin's answer.
func (s *dynsecSync) flush(ctx context.Context) error {
	s.send.Lock()
	defer s.send.Unlock()
	s.mu.Lock()
	var cmds []access.DynsecCommand
	sent := map[string]string{}
	for uuid := range s.dirty {
		role := access.DynsecDeviceRole(uuid)
		d := access.DynsecDigest(s.policy.Rules(access.Identity{Name: uuid, Role: access.RoleDevice}))
		if s.applied[role] != d {
			cmds = append(cmds, s.policy.DynsecDeviceCommands(uuid)...)
			sent[role] = d
		}
	}
	s.dirty = map[string]bool{}
	if d := access.DynsecDigest(s.policy.UpdateServerRules()); s.applied[access.DynsecUpdateServerRole] != d {
		cmds = append(cmds, s.policy.DynsecUpdateServerCommands()...)
		sent[access.DynsecUpdateServerRole] = d
	}
	s.mu.Unlock()
	if len(cmds) == 0 {
		return nil
	}
	res, err := s.request(ctx, cmds)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range res {
		// A role that did not exist yet cannot be deleted: expected.
		if r.Error != "" && r.Command != "deleteRole" {
			errs = append(errs, fmt.Errorf("%s: %s", r.Command, r.Error))
		}
	}
	s.mu.Lock()
	for role, d := range sent {
		s.applied[role] = d
	}
	s.mu.Unlock()
	s.updates.Add(1)
	s.log.Info("mosquitto dynamic-security roles updated", "roles", len(sent), "commands", len(cmds))
	return errors.Join(errs...)
}

// request sends commands and returns the plugin's answer to them (it
// echoes the correlation data of the last one). The caller holds s.send.
func (s *dynsecSync) request(ctx context.Context, cmds []access.DynsecCommand) ([]access.DynsecResult, error) {
	corr := "myno-" + strconv.FormatUint(s.seq.Add(1), 10)
	cmds[len(cmds)-1]["correlationData"] = corr
	payload, err := access.EncodeDynsecRequest(cmds)
	if err != nil {
		return nil, err
	}
	if err := s.mq.Publish(ctx, client.Message{Topic: access.DynsecTopic, Payload: payload}, 1); err != nil {
		return nil, fmt.Errorf("mosquitto dynamic security: %w", err)
	}
	t := time.NewTimer(dynsecTimeout)
	defer t.Stop()
	for {
		select {
		case res := <-s.answers:
			if len(res) > 0 && res[len(res)-1].CorrelationData == corr {
				return res, nil
			}
		case <-t.C:
			return nil, fmt.Errorf("mosquitto dynamic security: no answer within %s (is the plugin loaded, and may the bridge's user send its commands?)", dynsecTimeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
