package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v3"
	"gopkg.in/yaml.v3"
)

// A configuration file holds flag values of one command, keyed by the
// flag's long name, in YAML or TOML:
//
//	# myno bridge --config /etc/myno/bridge.yaml
//	netconf-listen: 0.0.0.0:830
//	mqtt-url: mqtts://broker.example:8883
//	rpc-timeout: 10s
//
// The command line wins over the environment, which wins over the file,
// which wins over the defaults. A key that names no flag of the command is
// an error, so a misspelt setting cannot be silently ignored.

// configFlagName is the flag that names the file.
const configFlagName = "config"

// secretFlags are flags whose values are never logged.
var secretFlags = []string{"mqtt-password"}

// withConfigFile gives cmd a --config flag read before its action.
func withConfigFile(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, &cli.StringFlag{Name: configFlagName,
		Usage:   "YAML (.yaml, .yml) or TOML (.toml) `FILE` of flag values keyed by flag name (e.g. netconf-listen: 127.0.0.1:830); flags and environment variables override it",
		Sources: cli.EnvVars("MYNO_CONFIG")})
	before := cmd.Before
	cmd.Before = func(ctx context.Context, c *cli.Command) (context.Context, error) {
		if err := applyConfigFile(c); err != nil {
			return ctx, &exitError{code: 2, err: fmt.Errorf("%s: %w", c.Name, err)}
		}
		if before != nil {
			return before(ctx, c)
		}
		return ctx, nil
	}
	return cmd
}

// applyConfigFile sets every flag of cmd that the command line and the
// environment left unset from the --config file, if one is given.
func applyConfigFile(cmd *cli.Command) error {
	path := cmd.String(configFlagName)
	if path == "" {
		return nil
	}
	values, err := readConfigFile(path)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		f := lookupFlag(cmd, key)
		if f == nil || key == configFlagName {
			return fmt.Errorf("--config %s: unknown key %q (keys are the long flag names of %s --help)", path, key, cmd.FullName())
		}
		if f.IsSet() {
			continue // the command line or the environment said otherwise
		}
		for _, v := range values[key] {
			if err := cmd.Set(key, v); err != nil {
				return fmt.Errorf("--config %s: %s: %w", path, key, err)
			}
		}
	}
	return nil
}

// lookupFlag is cmd's flag of that long name, or nil.
func lookupFlag(cmd *cli.Command, name string) cli.Flag {
	for _, f := range cmd.Flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

// readConfigFile reads a YAML or TOML file (by its extension) of
// key: value pairs. A value is a scalar or a list of scalars (for flags
// that may be repeated); each comes back as the text a flag would take.
func readConfigFile(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var values map[string][]string
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".yaml", ".yml":
		values, err = parseYAMLConfig(data)
	case ".toml":
		values, err = parseTOMLConfig(data)
	default:
		return nil, fmt.Errorf("--config %s: unknown format %q: want .yaml, .yml or .toml", path, ext)
	}
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	return values, nil
}

// parseYAMLConfig reads a YAML mapping, taking scalars as written (so
// 10s, 0x10 or 1e3 reach the flag as the text the user wrote).
func parseYAMLConfig(data []byte) (map[string][]string, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string][]string{}, nil // an empty file
		}
		return nil, err
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("want a mapping of flag names to values")
	}
	m := doc.Content[0]
	out := make(map[string][]string, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a key must be a flag name", k.Line)
		}
		if _, dup := out[k.Value]; dup {
			return nil, fmt.Errorf("line %d: %s is given twice", k.Line, k.Value)
		}
		switch v.Kind {
		case yaml.ScalarNode:
			out[k.Value] = []string{v.Value}
		case yaml.SequenceNode:
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("line %d: %s: a list holds plain values", e.Line, k.Value)
				}
				out[k.Value] = append(out[k.Value], e.Value)
			}
		default:
			return nil, fmt.Errorf("line %d: %s: want a value or a list of values", v.Line, k.Value)
		}
	}
	return out, nil
}

// parseTOMLConfig reads top-level TOML keys.
func parseTOMLConfig(data []byte) (map[string][]string, error) {
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(raw))
	for k, v := range raw {
		if list, ok := v.([]any); ok {
			for _, e := range list {
				s, err := tomlScalar(k, e)
				if err != nil {
					return nil, err
				}
				out[k] = append(out[k], s)
			}
			continue
		}
		s, err := tomlScalar(k, v)
		if err != nil {
			return nil, err
		}
		out[k] = []string{s}
	}
	return out, nil
}

func tomlScalar(key string, v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case time.Time:
		return v.Format(time.RFC3339Nano), nil
	}
	return "", fmt.Errorf("%s: want a value or a list of values, not %T", key, v)
}

// effectiveConfig is every flag of cmd with the value in force, for the
// log line a service writes at start; secrets show only whether they are
// set.
func effectiveConfig(cmd *cli.Command) slog.Attr {
	var attrs []any
	for _, f := range cmd.Flags {
		name := f.Names()[0]
		if name == "help" {
			continue
		}
		v := cmd.Value(name)
		if slices.Contains(secretFlags, name) {
			v = "(unset)"
			if cmd.String(name) != "" {
				v = "(set)"
			}
		}
		if d, ok := v.(time.Duration); ok {
			v = d.String()
		}
		attrs = append(attrs, slog.Any(name, v))
	}
	return slog.Group("config", attrs...)
}
