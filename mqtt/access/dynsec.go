package access

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Mosquitto's dynamic-security plugin (Mosquitto 2.0,
// mosquitto_dynamic_security.so): clients, groups and roles that the
// broker changes while it runs, through JSON commands on DynsecTopic.
// The project keeps one role per device ("myno-device:<uuid>") and per
// E2E manager, one shared role for the Update Servers' firmware topics
// (attached to DynsecUpdateServers), and one for the bridge, which may
// also send the plugin's commands.
const (
	DynsecTopic         = "$CONTROL/dynamic-security/v1"
	DynsecResponseTopic = DynsecTopic + "/response"
	// DynsecUpdateServers is the group of the update-server identities;
	// its role follows every registration.
	DynsecUpdateServers = "myno-update-servers"
)

// Dynsec role names.
const (
	dynsecBridgeRole  = "myno-bridge"
	dynsecUpdateRole  = "myno-update-server"
	dynsecRolePrefix  = "myno-"
	dynsecDeviceRole  = dynsecRolePrefix + "device:"
	dynsecManagerRole = dynsecRolePrefix + "manager:"
)

// DynsecDeviceRole is the role of device uuid.
func DynsecDeviceRole(uuid string) string { return dynsecDeviceRole + uuid }

// DynsecCommand is one command of the plugin's API.
type DynsecCommand map[string]any

// dynsecACL is one entry of a role.
type dynsecACL struct {
	Type  string `json:"acltype"`
	Topic string `json:"topic"`
	Allow bool   `json:"allow"`
}

// dynsecACLs turns rules into the plugin's ACL entries: a publish rule is
// publishClientSend; a subscribe rule is subscribePattern and, since the
// project denies receiving by default, publishClientReceive.
func dynsecACLs(r Rules) []dynsecACL {
	var out []dynsecACL
	for _, t := range r.Publish {
		out = append(out, dynsecACL{"publishClientSend", t, true})
	}
	for _, t := range r.Subscribe {
		out = append(out, dynsecACL{"subscribePattern", t, true}, dynsecACL{"publishClientReceive", t, true})
	}
	return out
}

// DynsecRoleCommands replaces a role with one that grants r: the plugin
// runs a request's commands in order, at once, so no client sees the role
// missing. A device's role is then given to the device's client, the
// Update Servers' to their group (deleting a role takes it from both).
func DynsecRoleCommands(role string, r Rules, client, group string) []DynsecCommand {
	cmds := []DynsecCommand{
		{"command": "deleteRole", "rolename": role},
		{"command": "createRole", "rolename": role, "acls": dynsecACLs(r)},
	}
	if client != "" {
		cmds = append(cmds, DynsecCommand{"command": "addClientRole", "username": client, "rolename": role})
	}
	if group != "" {
		cmds = append(cmds, DynsecCommand{"command": "addGroupRole", "groupname": group, "rolename": role})
	}
	return cmds
}

// DynsecDeviceCommands replaces device uuid's role with its current rules.
func (p Policy) DynsecDeviceCommands(uuid string) []DynsecCommand {
	return DynsecRoleCommands(DynsecDeviceRole(uuid), p.Rules(Identity{Name: uuid, Role: RoleDevice}), uuid, "")
}

// DynsecUpdateServerCommands replaces the Update Servers' shared role
// (every registered firmware topic, its acks, the status topics).
func (p Policy) DynsecUpdateServerCommands() []DynsecCommand {
	return DynsecRoleCommands(dynsecUpdateRole, p.UpdateServerRules(), "", DynsecUpdateServers)
}

// EncodeDynsecRequest is the payload of one request: {"commands": [...]}.
func EncodeDynsecRequest(cmds []DynsecCommand) ([]byte, error) {
	return json.Marshal(map[string]any{"commands": cmds})
}

// DynsecResult is the plugin's answer to one command; Error is "" on
// success. CorrelationData is the command's, echoed.
type DynsecResult struct {
	Command         string          `json:"command"`
	Error           string          `json:"error,omitempty"`
	CorrelationData string          `json:"correlationData,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// DynsecListRoles asks for every role with its ACLs.
func DynsecListRoles() DynsecCommand { return DynsecCommand{"command": "listRoles", "verbose": true} }

// DynsecRoleDigests reads a listRoles answer: each role's ACLs, as
// RulesDigest of the rules they grant (see DynsecDigest).
func DynsecRoleDigests(data json.RawMessage) (map[string]string, error) {
	var d struct {
		Roles []dynsecRole `json:"roles"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("listRoles: %w", err)
	}
	out := make(map[string]string, len(d.Roles))
	for _, r := range d.Roles {
		out[r.Rolename] = digestACLs(r.ACLs)
	}
	return out, nil
}

// DynsecDigest identifies the ACLs that rules become, whatever their order:
// the bridge changes a role only when its digest differs, since the
// plugin disconnects the clients of every role it changes.
func DynsecDigest(r Rules) string { return digestACLs(dynsecACLs(r)) }

func digestACLs(acls []dynsecACL) string {
	lines := make([]string, 0, len(acls))
	for _, a := range acls {
		lines = append(lines, fmt.Sprintf("%s %t %s", a.Type, a.Allow, a.Topic))
	}
	slices.Sort(lines)
	return digest([]byte(strings.Join(lines, "\n")))
}

// DynsecUpdateServerRole is the Update Servers' shared role.
const DynsecUpdateServerRole = dynsecUpdateRole

// DecodeDynsecResponse parses a message on DynsecResponseTopic.
func DecodeDynsecResponse(data []byte) ([]DynsecResult, error) {
	var r struct {
		Responses []DynsecResult `json:"responses"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("dynamic-security response: %w", err)
	}
	return r.Responses, nil
}

// dynsecClient is a client of the plugin's configuration file.
type dynsecClient struct {
	Username   string          `json:"username"`
	Password   string          `json:"password"`
	Salt       string          `json:"salt"`
	Iterations int             `json:"iterations"`
	Roles      []dynsecRoleRef `json:"roles,omitempty"`
	TextName   string          `json:"textName,omitempty"`
}

type dynsecRoleRef struct {
	Rolename string `json:"rolename"`
}

type dynsecRole struct {
	Rolename string      `json:"rolename"`
	ACLs     []dynsecACL `json:"acls"`
}

type dynsecGroup struct {
	Groupname string            `json:"groupname"`
	Roles     []dynsecRoleRef   `json:"roles"`
	Clients   []dynsecClientRef `json:"clients,omitempty"`
}

type dynsecClientRef struct {
	Username string `json:"username"`
}

// splitMosquittoHash takes "$7$<iterations>$<salt>$<key>" apart.
func splitMosquittoHash(h string) (iterations int, salt, key string, err error) {
	parts := strings.Split(h, "$")
	if len(parts) != 5 || parts[0] != "" || parts[1] != "7" {
		return 0, "", "", fmt.Errorf("not a Mosquitto PBKDF2-SHA-512 hash")
	}
	if iterations, err = strconv.Atoi(parts[2]); err != nil {
		return 0, "", "", fmt.Errorf("iterations: %w", err)
	}
	return iterations, parts[3], parts[4], nil
}

// ExportDynsec writes the plugin's configuration file
// (plugin_opt_config_file): every identity of e with its hashed token
// and its role, the Update Servers' group, and defaults that deny
// everything not granted (publishing, receiving, subscribing). The
// bridge identities may also send the plugin's commands, so that a
// bridge run with --mosquitto-dynsec keeps the roles in step with the
// registrations.
func ExportDynsec(e Export) ([]byte, error) {
	creds := slices.Clone(e.Credentials)
	slices.SortFunc(creds, func(a, b Credential) int { return strings.Compare(a.Name, b.Name) })
	cfg := struct {
		Clients []dynsecClient  `json:"clients"`
		Groups  []dynsecGroup   `json:"groups"`
		Roles   []dynsecRole    `json:"roles"`
		Default map[string]bool `json:"defaultACLAccess"`
	}{
		Default: map[string]bool{"publishClientSend": false, "publishClientReceive": false, "subscribe": false, "unsubscribe": true},
	}
	p := e.Policy
	bridge := p.Rules(Identity{Role: RoleBridge, Name: "bridge"})
	bridge.Publish = append(bridge.Publish, DynsecTopic+"/#")
	bridge.Subscribe = append(bridge.Subscribe, DynsecTopic+"/#")
	cfg.Roles = append(cfg.Roles, dynsecRole{Rolename: dynsecBridgeRole, ACLs: dynsecACLs(bridge)})
	cfg.Roles = append(cfg.Roles, dynsecRole{Rolename: dynsecUpdateRole, ACLs: dynsecACLs(p.UpdateServerRules())})
	cfg.Groups = append(cfg.Groups, dynsecGroup{Groupname: DynsecUpdateServers, Roles: []dynsecRoleRef{{dynsecUpdateRole}}})
	for _, c := range creds {
		if c.Enrolment || c.MosquittoHash == "" {
			continue
		}
		iterations, salt, key, err := splitMosquittoHash(c.MosquittoHash)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		cl := dynsecClient{Username: c.Name, Password: key, Salt: salt, Iterations: iterations, TextName: string(c.Role)}
		switch c.Role {
		case RoleBridge:
			cl.Roles = []dynsecRoleRef{{dynsecBridgeRole}}
		case RoleDevice:
			role := DynsecDeviceRole(c.Name)
			cfg.Roles = append(cfg.Roles, dynsecRole{Rolename: role, ACLs: dynsecACLs(p.Rules(Identity{Name: c.Name, Role: c.Role}))})
			cl.Roles = []dynsecRoleRef{{role}}
		case RoleUpdateServer, RoleE2EManager:
			role := dynsecManagerRole + c.Name
			cfg.Roles = append(cfg.Roles, dynsecRole{Rolename: role, ACLs: dynsecACLs(p.managerRules(c.Name))})
			cl.Roles = []dynsecRoleRef{{role}}
			if c.Role == RoleUpdateServer {
				cfg.Groups[0].Clients = append(cfg.Groups[0].Clients, dynsecClientRef{c.Name})
			}
		}
		cfg.Clients = append(cfg.Clients, cl)
	}
	return json.MarshalIndent(cfg, "", "  ")
}
