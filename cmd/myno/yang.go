package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/myno-bridge/myno/ontology"
	"github.com/myno-bridge/myno/yang"
)

func yangCommand() *cli.Command {
	return &cli.Command{
		Name:      "yang",
		Usage:     "generate YANG 1.1 modules from JSON-LD device descriptions",
		ArgsUsage: "FILE...",
		Description: "Parses each description and prints one YANG module per distinct description shape.\n" +
			"Descriptions with the same shape share one module; the others are reported on stderr.\n" +
			"On bad input it exits with status 1 and names the file and the problem.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "uuid", Usage: "bind the descriptions' %s placeholders to this device `UUID`", Sources: cli.EnvVars("MYNO_UUID")},
			&cli.BoolFlag{Name: "tree", Usage: "print a compact tree of the rpcs, their inputs and the sensors instead of YANG"},
			&cli.StringFlag{Name: "out-dir", Usage: "also write each module to `DIR`/<name>@<revision>.yang", Sources: cli.EnvVars("MYNO_YANG_OUT_DIR")},
			&cli.IntFlag{Name: "max-bytes", Value: ontology.DefaultMaxBytes, Usage: "largest description accepted, in bytes", Sources: cli.EnvVars("MYNO_MAX_DESCRIPTION_BYTES")},
		},
		Action: runYang,
	}
}

func runYang(_ context.Context, cmd *cli.Command) error {
	files := cmd.Args().Slice()
	if len(files) == 0 {
		return &exitError{code: 2, err: errors.New("yang: no description files given (see myno yang --help)")}
	}
	parser := &ontology.Parser{MaxBytes: int(cmd.Int("max-bytes"))}
	stdout, stderr := cmd.Root().Writer, cmd.Root().ErrWriter
	outDir := cmd.String("out-dir")
	seen := map[string]string{} // shape -> first file
	var failed []error
	for _, file := range files {
		mod, err := generateFile(parser, file, cmd.String("uuid"))
		if err != nil {
			failed = append(failed, err)
			fmt.Fprintf(stderr, "myno: %v\n", err)
			continue
		}
		for _, w := range mod.Device.Warnings {
			fmt.Fprintf(stderr, "myno: %s: warning: %s\n", file, w)
		}
		if first, dup := seen[mod.Device.Shape()]; dup {
			fmt.Fprintf(stderr, "myno: %s: same shape as %s, module %s\n", file, first, mod.Name)
			continue
		}
		seen[mod.Device.Shape()] = file
		if cmd.Bool("tree") {
			if err := mod.WriteTree(stdout); err != nil {
				return err
			}
		} else {
			fmt.Fprint(stdout, mod.Text)
		}
		if outDir != "" {
			path := filepath.Join(outDir, mod.Name+"@"+mod.Revision+".yang")
			if err := os.WriteFile(path, []byte(mod.Text), 0o644); err != nil {
				return &exitError{code: 1, err: fmt.Errorf("yang: %w", err)}
			}
		}
	}
	if len(failed) > 0 {
		return &exitError{code: 1, err: fmt.Errorf("yang: %d of %d descriptions failed", len(failed), len(files))}
	}
	return nil
}

func generateFile(p *ontology.Parser, file, uuid string) (*yang.Module, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dev, err := p.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	mod, err := yang.Generate(dev, yang.Options{UUID: uuid})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return mod, nil
}
