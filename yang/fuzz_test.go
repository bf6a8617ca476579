package yang_test

import (
	"errors"
	"testing"

	"github.com/myno-bridge/myno/yang"
)

// FuzzParseInput feeds arbitrary rpc XML to the input validator of a
// module with every kind of input. Properties: no panic, errors are
// *InputError with an RFC 6241 tag, and accepted calls have one argument
// per non-selector input and a device UUID.
func FuzzParseInput(f *testing.F) {
	m := generateForFuzz(f)
	ns := m.Namespace
	for _, seed := range []string{
		`<setRgb xmlns="` + ns + `"><uuidInput>l</uuidInput><input_1_Rgb><var_1_Red>1</var_1_Red><var_2_Green>2</var_2_Green><var_3_Blue>3</var_3_Blue></input_1_Rgb></setRgb>`,
		`<setRgb xmlns="` + ns + `"><uuidInput>l</uuidInput><input_1_Rgb>1</input_1_Rgb></setRgb>`,
		`<lampOff xmlns="` + ns + `"><uuidInput>l</uuidInput></lampOff>`,
		`<lampOff xmlns="` + ns + `"><uuidInput>l`,
		`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><lampOff xmlns="` + ns + `">&a;</lampOff>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		call, err := m.ParseInput(data)
		if err != nil {
			var ie *yang.InputError
			if !errors.As(err, &ie) || ie.Tag == "" {
				t.Fatalf("error %T %v is not a tagged InputError", err, err)
			}
			return
		}
		if call.UUID == "" {
			t.Fatalf("accepted call without device UUID")
		}
		want := 0
		for _, in := range call.RPC.Inputs {
			if !in.Selector() {
				want++
			}
		}
		if len(call.Args) != want {
			t.Fatalf("%d args for %d inputs", len(call.Args), want)
		}
	})
}

func generateForFuzz(f *testing.F) *yang.Module {
	f.Helper()
	return testdataModule(f, "rgb-lamp.jsonld")
}
