package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/internal/atomicfile"
	"github.com/myno-bridge/myno/netconf"
)

func usersCommand() *cli.Command {
	file := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "data-dir", Value: "myno-data", Usage: "the bridge's data `DIR` (its users file is <data-dir>/users)", Sources: cli.EnvVars("MYNO_DATA_DIR")},
			&cli.StringFlag{Name: "users", Usage: "users `FILE` (default <data-dir>/users)", Sources: cli.EnvVars("MYNO_USERS")},
		}
	}
	password := &cli.StringFlag{Name: "password-file", Usage: "read the password from `FILE` (default: generate one and print it once)", Sources: cli.EnvVars("MYNO_USER_PASSWORD_FILE")}
	return &cli.Command{
		Name:  "users",
		Usage: "manage the bridge's NETCONF users (the running bridge takes the change within seconds, or at SIGHUP)",
		Description: "Edits the users file atomically (name:bcrypt-hash:groups; groups admin and read-only).\n" +
			"A lost admin password is reset with: myno users passwd admin --data-dir DIR",
		Commands: []*cli.Command{{
			Name: "add", Usage: "add a user", ArgsUsage: "NAME",
			Flags:  append(file(), password, &cli.StringSliceFlag{Name: "group", Value: []string{netconf.ReadOnlyGroup}, Usage: "`GROUP` (admin, read-only); repeat for several"}),
			Action: func(ctx context.Context, cmd *cli.Command) error { return editUser(cmd, true) },
		}, {
			Name: "passwd", Usage: "set a user's password", ArgsUsage: "NAME",
			Flags:  append(file(), password),
			Action: func(ctx context.Context, cmd *cli.Command) error { return editUser(cmd, false) },
		}, {
			Name: "remove", Usage: "remove a user", ArgsUsage: "NAME", Flags: file(),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				name, f, path, err := openUsers(cmd)
				if err != nil {
					return err
				}
				if !f.Remove(name) {
					return &exitError{code: 1, err: fmt.Errorf("users: no user %q in %s", name, path)}
				}
				if err := atomicfile.Write(path, f.Bytes(), 0o600); err != nil {
					return &exitError{code: 1, err: fmt.Errorf("users: %w", err)}
				}
				fmt.Fprintf(cmd.Root().Writer, "removed %s\n", name)
				return nil
			},
		}, {
			Name: "list", Usage: "list the users and their groups", Flags: file(),
			Action: func(ctx context.Context, cmd *cli.Command) error {
				path := usersPath(cmd)
				data, err := os.ReadFile(path)
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("users: %w", err)}
				}
				f, err := netconf.ParseUsersFile(data)
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("users: %s: %w", path, err)}
				}
				w := tabwriter.NewWriter(cmd.Root().Writer, 0, 4, 2, ' ', 0)
				fmt.Fprintln(w, "USER\tGROUPS")
				for _, n := range f.Names() {
					g, _ := f.Groups(n)
					fmt.Fprintf(w, "%s\t%s\n", n, strings.Join(g, ","))
				}
				return w.Flush()
			},
		}},
	}
}

func usersPath(cmd *cli.Command) string {
	if p := cmd.String("users"); p != "" {
		return p
	}
	return filepath.Join(cmd.String("data-dir"), "users")
}

// openUsers reads the users file named by the flags (a missing one is
// empty) and the NAME argument.
func openUsers(cmd *cli.Command) (name string, f *netconf.UsersFile, path string, err error) {
	if cmd.Args().Len() != 1 {
		return "", nil, "", &exitError{code: 2, err: fmt.Errorf("users %s: give one user NAME", cmd.Name)}
	}
	path = usersPath(cmd)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", nil, "", &exitError{code: 1, err: fmt.Errorf("users: %w", err)}
	}
	if f, err = netconf.ParseUsersFile(data); err != nil {
		return "", nil, "", &exitError{code: 1, err: fmt.Errorf("users: %s: %w", path, err)}
	}
	return cmd.Args().First(), f, path, nil
}

// editUser adds a user (add) or sets an existing one's password (passwd).
func editUser(cmd *cli.Command, add bool) error {
	name, f, path, err := openUsers(cmd)
	if err != nil {
		return err
	}
	groups, exists := f.Groups(name)
	switch {
	case add && exists:
		return &exitError{code: 1, err: fmt.Errorf("users add: user %q exists (myno users passwd changes its password)", name)}
	case !add && !exists:
		return &exitError{code: 1, err: fmt.Errorf("users passwd: no user %q in %s", name, path)}
	case add:
		groups = cmd.StringSlice("group")
	}
	password, generated := "", false
	if pf := cmd.String("password-file"); pf != "" {
		b, err := os.ReadFile(pf)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("users: --password-file: %w", err)}
		}
		password = string(bytes.TrimRight(b, "\r\n"))
		if password == "" {
			return &exitError{code: 2, err: errors.New("users: --password-file is empty")}
		}
	} else {
		b := make([]byte, 18)
		_, _ = rand.Read(b)
		password, generated = base64.RawURLEncoding.EncodeToString(b), true
	}
	hash, err := netconf.HashPassword(password)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := f.Set(name, hash, groups); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("users: %w", err)}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return &exitError{code: 1, err: err}
	}
	if err := atomicfile.Write(path, f.Bytes(), 0o600); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("users: %w", err)}
	}
	w := cmd.Root().Writer
	if generated {
		fmt.Fprintf(w, "%s %s (groups %s), password %s (shown once; stored hashed in %s)\n", map[bool]string{true: "added", false: "changed"}[add], name, strings.Join(groups, ","), password, path)
	} else {
		fmt.Fprintf(w, "%s %s (groups %s) in %s\n", map[bool]string{true: "added", false: "changed"}[add], name, strings.Join(groups, ","), path)
	}
	return nil
}
