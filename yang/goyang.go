package yang

import (
	"errors"

	"github.com/openconfig/goyang/pkg/yang"
)

// checkWithGoyang parses and resolves a module with goyang.
func checkWithGoyang(name, text string) error {
	ms := yang.NewModules()
	if err := ms.Parse(text, name+".yang"); err != nil {
		return err
	}
	if errs := ms.Process(); len(errs) > 0 {
		return errors.Join(errs...)
	}
	return nil
}
